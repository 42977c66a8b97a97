// midge_passwd: manages password files for Midge (and Mosquitto), a drop-in
// for mosquitto_passwd 2.0.11: same options, messages, exit codes and file
// format, so files move freely between the two brokers and tools. It
// deliberately differs in three cases where mosquitto_passwd loses data:
// - a corrupt line while adding a user: mosquitto_passwd reports it, then
//   rewrites the file without the lines after it; we leave the file as is
//   and exit 1;
// - -U on entries already hashed: mosquitto_passwd hashes the hash, locking
//   those users out; we keep them unchanged;
// - an empty user name (which makes the file corrupt for later runs) is
//   refused.
// And it is stricter in two: -c creates the file with mode 0600 (not the
// umask's 0644), and PBKDF2 runs 210000 iterations by default, not 101.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/password_hash.h"

namespace {

using midge::auth::HashType;
using midge::auth::PasswordHash;

constexpr size_t kMaxLength = 65535;       // an MQTT string's limit
constexpr size_t kMaxPasswordInput = 65500;  // mosquitto_passwd's prompt buffer

void print_usage() {
  std::printf(
      "midge_passwd is a tool for managing password files for midge.\n\n"
      "Usage: midge_passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] passwordfile username\n"
      "       midge_passwd [-H sha512 | -H sha512-pbkdf2] [-c] -b passwordfile username password\n"
      "       midge_passwd -U passwordfile\n"
      " -b : run in batch mode to allow passing passwords on the command line.\n"
      " -c : create a new password file. This will overwrite existing files.\n"
      " -D : delete the username rather than adding/updating its password.\n"
      " -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n"
      "      Mosquitto 1.6 and earlier defaulted to sha512.\n"
      " -I : number of sha512-pbkdf2 iterations (default 210000).\n"
      " -U : update a plain text password file to use hashed passwords.\n"
      "\nFiles are interchangeable with mosquitto_passwd's.\n\n");
}

struct Options {
  HashType type = HashType::kSha512Pbkdf2;
  int iterations = midge::auth::kRecommendedIterations;
  bool batch = false, create = false, remove = false, upgrade = false;
  std::string file, username;
  std::optional<std::string> password;
};

// ---------------------------------------------------------------- terminal

termios saved_termios;
volatile sig_atomic_t echo_off = 0;

void restore_terminal_and_exit(int) {
  if (echo_off) tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
  _exit(0);
}

// One line from stdin with the terminal's echo off (when it is a terminal).
// Like mosquitto_passwd, a newline is printed after a non-empty answer since
// the user's own Enter was not echoed.
std::optional<std::string> read_password(const char* prompt) {
  std::printf("%s", prompt);
  std::fflush(stdout);
  const bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0;
  if (tty) {
    termios quiet = saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    echo_off = 1;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::vector<char> buf(kMaxPasswordInput);
  const bool got = std::fgets(buf.data(), static_cast<int>(buf.size()), stdin) != nullptr;
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
    echo_off = 0;
  }
  if (!got) return std::nullopt;
  std::string line(buf.data());
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty()) return std::nullopt;
  std::printf("\n");
  return line;
}

// Returns 0 with the password set, or mosquitto_passwd's exit code.
int ask_password(std::string& out) {
  auto first = read_password("Password: ");
  if (!first) {
    std::fprintf(stderr, "Error: Empty password.\n");
    return 1;
  }
  auto second = read_password("Reenter password: ");
  if (!second) {
    std::fprintf(stderr, "Error: Empty password.\n");
    return 1;
  }
  if (*first != *second) {
    std::fprintf(stderr, "Error: Passwords do not match.\n");
    return 2;
  }
  out = std::move(*first);
  return 0;
}

// ---------------------------------------------------------------- arguments

// Returns -1 to go on, or the exit code.
int parse_args(int argc, char** argv, Options& o) {
  if (argc == 1) {
    print_usage();
    return 1;
  }
  int idx = 1;
  for (; idx < argc; ++idx) {
    const std::string_view a = argv[idx];
    if (a == "-H" || a == "-I") {
      if (idx + 1 == argc) {
        std::fprintf(stderr, "Error: %s argument given but not enough other arguments.\n", argv[idx]);
        return 1;
      }
      const std::string_view v = argv[++idx];
      if (a == "-H") {
        if (v == "sha512") {
          o.type = HashType::kSha512;
        } else if (v == "sha512-pbkdf2") {
          o.type = HashType::kSha512Pbkdf2;
        } else {
          std::fprintf(stderr, "Error: Unknown hash type '%s'\n", argv[idx]);
          return 1;
        }
      } else {
        // atoi semantics, as mosquitto_passwd: leading digits count.
        const long n = std::strtol(argv[idx], nullptr, 10);
        if (n < 1 || n > INT_MAX) {
          std::fprintf(stderr, "Error: Number of iterations must be > 0.\n");
          return 1;
        }
        o.iterations = static_cast<int>(n);
      }
    } else if (a == "-b") {
      o.batch = true;
    } else if (a == "-c") {
      o.create = true;
    } else if (a == "-D") {
      o.remove = true;
    } else if (a == "-U") {
      o.upgrade = true;
    } else {
      break;
    }
  }
  const char* conflict = o.create && o.remove    ? "-c and -D"
                         : o.create && o.upgrade ? "-c and -U"
                         : o.remove && o.upgrade ? "-D and -U"
                         : o.remove && o.batch   ? "-b and -D"
                                                 : nullptr;
  if (conflict) {
    std::fprintf(stderr, "Error: %s cannot be used together.\n", conflict);
    return 1;
  }
  const int left = argc - idx;
  if (o.create && o.batch && left < 3) {
    std::fprintf(stderr, "Error: -c argument given but password file, username, or password missing.\n");
    return 1;
  }
  if (o.create && !o.batch && left < 2) {
    std::fprintf(stderr, "Error: -c argument given but password file or username missing.\n");
    return 1;
  }
  if (o.remove && left < 2) {
    std::fprintf(stderr, "Error: -D argument given but password file or username missing.\n");
    return 1;
  }
  if (o.upgrade && left != 1) {
    std::fprintf(stderr, "Error: -U argument given but password file missing.\n");
    return 1;
  }
  // Without -c, -D or -U the argument count must be exact.
  if (!o.create && !o.remove && !o.upgrade && left != (o.batch ? 3 : 2)) {
    print_usage();
    return 1;
  }
  o.file = argv[idx];
  if (!o.upgrade) o.username = argv[idx + 1];
  if (o.batch && !o.remove && !o.upgrade) o.password = argv[idx + 2];
  return -1;
}

bool username_valid(const Options& o) {
  if (o.upgrade) return true;
  const std::string& u = o.username;
  if (u.size() > kMaxLength) {
    std::fprintf(stderr, "Error: Username must be less than 65536 characters long.\n");
    return false;
  }
  if (u.empty()) {
    std::fprintf(stderr, "Error: Username must not be empty.\n");
    return false;
  }
  for (char c : u) {
    if (std::iscntrl(static_cast<unsigned char>(c))) {
      std::fprintf(stderr, "Error: Username must not contain control characters.\n");
      return false;
    }
  }
  if (u.find(':') != std::string::npos) {
    std::fprintf(stderr, "Error: Username must not contain the ':' character.\n");
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- file edits

bool new_line(std::string& out, const std::string& user, const std::string& password, HashType type,
              int iterations) {
  auto h = PasswordHash::make(password, type, iterations);
  if (!h) {
    std::fprintf(stderr, "Error: Unable to hash password.\n");
    return false;
  }
  out += user + ":" + h->to_string() + "\n";
  return true;
}

// One line of an existing file as mosquitto_passwd splits it: strtok on ':'
// (so empty fields are skipped), then blanks trimmed from both fields.
struct Line {
  std::string text;  // as read, with its newline
  std::string user, password;
};

std::string trim(std::string_view s) {
  const auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// Splits `content` into lines; false (after the message) at a corrupt line.
bool split_lines(const std::string& content, std::vector<Line>& lines) {
  size_t pos = 0;
  int number = 0;
  while (pos < content.size()) {
    const size_t eol = content.find('\n', pos);
    const size_t end = eol == std::string::npos ? content.size() : eol + 1;
    Line l;
    l.text = content.substr(pos, end - pos);
    pos = end;
    ++number;
    std::vector<std::string_view> tokens;
    std::string_view rest = l.text;
    while (tokens.size() < 2 && !rest.empty()) {
      const size_t colon = rest.find(':');
      if (colon != 0) tokens.push_back(rest.substr(0, colon));
      rest.remove_prefix(colon == std::string_view::npos ? rest.size() : colon + 1);
    }
    if (tokens.size() == 2) {
      l.user = trim(tokens[0]);
      l.password = trim(tokens[1]);
    }
    if (l.user.empty() || l.password.empty()) {
      std::fprintf(stderr, "Error: Corrupt password file at line %d.\n", number);
      return false;
    }
    lines.push_back(std::move(l));
  }
  return true;
}

bool read_all(FILE* f, std::string& out) {
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  return !std::ferror(f);
}

bool write_all(FILE* f, const std::string& data) {
  std::rewind(f);
  if (ftruncate(fileno(f), 0) != 0) return false;
  return std::fwrite(data.data(), 1, data.size(), f) == data.size() && std::fflush(f) == 0;
}

// Computes the new content; returns 0 or the exit code.
int edit(const Options& o, const std::string& content, std::string& out) {
  std::vector<Line> lines;
  const bool whole = split_lines(content, lines);
  if (o.remove) {
    bool found = false;
    for (const Line& l : lines) {
      if (l.user == o.username) {
        found = true;
      } else {
        out += l.text;
      }
    }
    if (!found) std::fprintf(stderr, "Warning: User %s not found in password file.\n", o.username.c_str());
    return whole && found ? 0 : 1;
  }
  if (!whole) return 1;
  if (o.upgrade) {
    // mosquitto_passwd -U reports failure on an empty file, and hashes with
    // the default iteration count whatever -I says.
    if (lines.empty()) return 1;
    for (const Line& l : lines) {
      std::string ignored;
      if (PasswordHash::parse(l.password, ignored)) {
        out += l.text;  // already hashed (see the file comment)
      } else if (!new_line(out, l.user, l.password, o.type, midge::auth::kRecommendedIterations)) {
        return 1;
      }
    }
    return 0;
  }
  bool found = false;
  for (const Line& l : lines) {
    if (l.user != o.username) {
      out += l.text;
    } else {
      found = true;
      if (!new_line(out, l.user, *o.password, o.type, o.iterations)) return 1;
    }
  }
  if (!found && !new_line(out, o.username, *o.password, o.type, o.iterations)) return 1;
  return 0;
}

// A copy of the old content, kept until the file was rewritten (as
// mosquitto_passwd does): if the rewrite fails midway the users are not lost.
bool make_backup(const std::string& path, const std::string& content, std::string& backup) {
  std::vector<char> name(path.begin(), path.end());
  const std::string suffix = ".backup.XXXXXX";
  name.insert(name.end(), suffix.begin(), suffix.end());
  name.push_back('\0');
  const mode_t old = umask(077);
  const int fd = mkstemp(name.data());
  umask(old);
  backup = name.data();
  if (fd < 0) {
    std::fprintf(stderr, "Error creating backup password file \"%s\", not continuing.\n", backup.c_str());
    return false;
  }
  FILE* f = fdopen(fd, "w");
  const bool ok = f && std::fwrite(content.data(), 1, content.size(), f) == content.size();
  if (f ? std::fclose(f) != 0 : ::close(fd) != 0) return false;
  if (!ok) {
    std::fprintf(stderr, "Error copying data to backup password file \"%s\", not continuing.\n", backup.c_str());
    ::unlink(backup.c_str());
  }
  return ok;
}

int update_existing(const Options& o, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r+");
  if (!f) {
    std::fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  std::string content, backup, out;
  if (!read_all(f, content) || !make_backup(path, content, backup)) {
    std::fclose(f);
    return 1;
  }
  Options opts = o;
  if (!o.batch && !o.remove && !o.upgrade) {
    std::string password;
    if (int rc = ask_password(password); rc != 0) {
      std::fclose(f);
      ::unlink(backup.c_str());
      return rc;
    }
    opts.password = std::move(password);
  }
  if (int rc = edit(opts, content, out); rc != 0) {
    std::fclose(f);
    ::unlink(backup.c_str());
    return rc;
  }
  const bool ok = write_all(f, out);
  if (std::fclose(f) != 0 || !ok) {
    std::fprintf(stderr, "Error occurred updating password file.\n");
    std::fprintf(stderr, "Password file may be corrupt, check the backup file: %s.\n", backup.c_str());
    return 1;
  }
  ::unlink(backup.c_str());  // may hold old passwords: not kept around
  return 0;
}

int create_new(const Options& o, const std::string& path) {
  std::string password;
  if (o.password) {
    password = *o.password;
  } else if (int rc = ask_password(password); rc != 0) {
    return rc;
  }
  // A new file is readable by its owner only, like the backup (the hashes
  // can be attacked offline); an existing one keeps its mode.
  const mode_t old_mask = umask(077);
  FILE* f = std::fopen(path.c_str(), "w");
  umask(old_mask);
  if (!f) {
    std::fprintf(stderr, "Error: Unable to open file %s for writing. %s.\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  std::string out;
  const bool made = new_line(out, o.username, password, o.type, o.iterations);
  const bool ok = made && std::fwrite(out.data(), 1, out.size(), f) == out.size();
  std::fclose(f);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGINT, restore_terminal_and_exit);
  signal(SIGTERM, restore_terminal_and_exit);
  Options o;
  if (int rc = parse_args(argc, argv, o); rc >= 0) return rc;
  if (!username_valid(o)) return 1;
  if (o.password && o.password->size() > kMaxLength) {
    std::fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
    return 1;
  }
  // Messages name the resolved path, as mosquitto_passwd's do.
  std::string path = o.file;
  if (char* real = realpath(o.file.c_str(), nullptr)) {
    path = real;
    std::free(real);
  } else if (errno != ENOENT) {
    std::fprintf(stderr, "Error reading password file: %s\n", std::strerror(errno));
    return 1;
  }
  return o.create ? create_new(o, path) : update_existing(o, path);
}

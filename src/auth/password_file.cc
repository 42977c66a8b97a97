#include "auth/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

#include "auth/text_file.h"
#include "util/string_hash.h"

namespace midge::auth {

namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kBlanks = " \t\r\n\v\f";
  const size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

}  // namespace

PasswordFile::PasswordFile() {
  // Without randomness the cache still works, only with a predictable key.
  RAND_bytes(cache_key_.data(), static_cast<int>(cache_key_.size()));
}

std::unique_ptr<PasswordFile> PasswordFile::load(const std::string& path, std::vector<std::string>& problems,
                                                 std::string& error) {
  // Mosquitto 2.0.11 refuses to start when the file cannot be opened
  // ("Error: Unable to open pwfile ..."). It starts with no users when the
  // path is a directory; refusing is clearer and no less safe.
  struct stat st {};
  const std::optional<std::string> text = read_text_file(path, "pwfile", error, st);
  if (!text) return nullptr;
  auto file = parse(*text, path, problems);
  // Hashes are offline-guessable: other accounts should not read them.
  if ((st.st_mode & S_IROTH) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    problems.push_back("Warning: password file " + path + " is readable by every user (mode " + mode +
                       "); chmod 0600 it, or 0640 for the broker's group.");
  }
  return file;
}

// Line rules of Mosquitto 2.0.11's broker (found by experiment): blank lines
// and '#' comments are skipped; the user name is what precedes the first ':'
// and the hash what follows it up to any next ':', both trimmed of blanks
// (so CRLF files work); a line without ':' is ignored; an entry whose hash
// cannot be used is dropped with an error, the broker still starts; a later
// valid entry for the same user replaces an earlier one.
std::unique_ptr<PasswordFile> PasswordFile::parse(std::string_view text, const std::string& name,
                                                  std::vector<std::string>& problems) {
  auto file = std::make_unique<PasswordFile>();
  int line_no = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view raw = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_no;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      problems.push_back("Warning: " + where + "invalid line in password file (no ':'), ignored.");
      continue;
    }
    const std::string user(trim(line.substr(0, colon)));
    if (user.empty()) {
      problems.push_back("Warning: " + where + "invalid line in password file (empty username), ignored.");
      continue;
    }
    std::string_view rest = line.substr(colon + 1);
    rest = trim(rest.substr(0, rest.find(':')));
    std::string error = "Invalid password hash";
    std::optional<PasswordHash> hash;
    if (!rest.empty()) hash = PasswordHash::parse(rest, error);
    if (!hash) {
      problems.push_back("Error: " + where + error + " for user " + user + ", removing entry.");
      continue;
    }
    file->users_.insert_or_assign(user, std::move(*hash));
  }
  file->choose_dummy();
  return file;
}

size_t PasswordFile::DigestHash::operator()(const Digest& d) const {
  size_t h = 0;
  std::memcpy(&h, d.data(), sizeof(h));  // already uniformly distributed
  return h;
}

PasswordFile::Digest PasswordFile::digest(std::string_view username, std::string_view password) const {
  // Length-prefix the user so that ("ab", "c") and ("a", "bc") differ.
  std::string msg;
  msg.reserve(4 + username.size() + password.size());
  const uint32_t n = static_cast<uint32_t>(username.size());
  msg.append(reinterpret_cast<const char*>(&n), sizeof(n));
  msg.append(username);
  msg.append(password);
  Digest d{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), cache_key_.data(), static_cast<int>(cache_key_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), d.data(), &len);
  OPENSSL_cleanse(msg.data(), msg.size());
  return d;
}

bool PasswordFile::remembered(std::string_view username, std::string_view password) const {
  const Digest key = digest(username, password);
  std::lock_guard lock(mutex_);
  return verified_.count(key) != 0;
}

bool PasswordFile::verify(std::string_view username, std::string_view password) const {
  if (remembered(username, password)) return true;
  auto it = users_.find(std::string(username));
  const bool known = it != users_.end();
  const PasswordHash& hash = known ? it->second : dummy_;
  hash_work_.fetch_add(hash.type == HashType::kSha512 ? 1 : static_cast<uint64_t>(hash.iterations),
                       std::memory_order_relaxed);
  if (!hash.matches(password) || !known) return false;
  const Digest key = digest(username, password);
  std::lock_guard lock(mutex_);
  if (verified_.size() >= kMaxVerified) verified_.clear();  // bounded; refilled by the next connects
  verified_.insert(key);
  return true;
}

// The most common (kind, iterations, salt length) among the entries, ties
// going to the costlier: in a file made by one tool, every entry's.
void PasswordFile::choose_dummy() {
  std::map<std::tuple<int, int, size_t>, size_t> counts;
  for (const auto& [user, hash] : users_) ++counts[{static_cast<int>(hash.type), hash.iterations, hash.salt.size()}];
  std::tuple<int, int, size_t> kind{static_cast<int>(HashType::kSha512Pbkdf2), kDefaultIterations, kSaltBytes};
  size_t best = 0;
  for (const auto& [k, n] : counts) {
    if (n >= best) {  // ascending keys: a tie goes to the costlier
      kind = k;
      best = n;
    }
  }
  dummy_.type = static_cast<HashType>(std::get<0>(kind));
  dummy_.iterations = std::get<1>(kind);
  dummy_.salt.assign(std::get<2>(kind), '\0');
  dummy_.hash.assign(kHashBytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(dummy_.salt.data()), static_cast<int>(dummy_.salt.size()));
  RAND_bytes(reinterpret_cast<unsigned char*>(dummy_.hash.data()), static_cast<int>(dummy_.hash.size()));
}

uint64_t PasswordFile::stamp(std::string_view username) const {
  auto it = users_.find(std::string(username));
  if (it == users_.end()) return 0;
  const PasswordHash& h = it->second;
  const std::string entry = std::to_string(static_cast<int>(h.type)) + ':' + std::to_string(h.iterations) + ':' +
                            h.salt + ':' + h.hash;
  return util::hash_bytes(entry) | 1;
}

}  // namespace midge::auth

// Password files in mosquitto_passwd's format. The known-answer lines were
// written by Debian 12's /usr/bin/mosquitto_passwd 2.0.11 with the password
// given beside each.
#include "auth/password_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

namespace midge::auth {
namespace {

constexpr const char* kPbkdf2Line =  // password "mot2passe", 101 iterations
    "sondes:$7$101$W7pYW84cImjLhKJg$/4JazFgK60vohCP2W3VH/01yoF0QAb9nwwFxJLNtoJDTttrTI3mQX64niJcqAtV8hp7uM/"
    "vGDKTzrWG0izeE+w==";
constexpr const char* kSha512Line =  // password "k", mosquitto_passwd -H sha512
    "j:$6$q0T6klmkpp4iYvG9$qo8VOoThCHMTsdOGL7NjZa57VMtWcoyo+tUDF8d3sYimz4t2oiyhgBzGymrsKBTmXmwQQ4+Dbtk60B74/"
    "u24rQ==";
constexpr const char* kIter1000Line =  // password "i", -I 1000
    "h:$7$1000$Hp/SHhvNMv+2Qm/t$Zr1eQr3v8vd9mRkBqkK8U5YjBVj9E741I+tq2NQ0rDvFiAC+tOwXp0vvGM7l1H9ET0ZGGD3QkOdlNDKB22rUiA==";
constexpr const char* kIter100kLine =  // password "secret", -I 100000
    "big:$7$100000$HfvS0JdoNqmxAnX+$DLAhVrnCerw8Zjirw7OKTbxHvYFjWt7hgsx+VoYImYJN5/"
    "QXvgmSVmKnLib3RK9pLyVzGEd2VJxYwJS+OR/0Xg==";

std::unique_ptr<PasswordFile> parse(const std::string& text, std::vector<std::string>* out = nullptr) {
  std::vector<std::string> problems;
  auto f = PasswordFile::parse(text, "pw", problems);
  if (out) *out = problems;
  return f;
}

TEST(PasswordFile, KnownAnswerPbkdf2) {
  auto f = parse(std::string(kPbkdf2Line) + "\n");
  ASSERT_EQ(f->size(), 1u);
  EXPECT_TRUE(f->verify("sondes", "mot2passe"));
  EXPECT_FALSE(f->verify("sondes", "mot2passE"));
  EXPECT_FALSE(f->verify("sondes", ""));
  EXPECT_FALSE(f->verify("Sondes", "mot2passe"));
  EXPECT_FALSE(f->verify("nobody", "mot2passe"));
}

TEST(PasswordFile, KnownAnswerSha512AndIterations) {
  auto f = parse(std::string(kSha512Line) + "\n" + kIter1000Line + "\n" + kIter100kLine);
  ASSERT_EQ(f->size(), 3u);
  EXPECT_TRUE(f->verify("j", "k"));
  EXPECT_FALSE(f->verify("j", "i"));
  EXPECT_TRUE(f->verify("h", "i"));
  EXPECT_FALSE(f->verify("h", "k"));
  EXPECT_TRUE(f->verify("big", "secret"));
  EXPECT_TRUE(f->verify("big", "secret"));  // second time from the cache
  EXPECT_FALSE(f->verify("big", "Secret"));
}

TEST(PasswordFile, CacheDoesNotConfuseUsers) {
  auto f = parse(std::string(kSha512Line) + "\n" + kIter1000Line + "\n");
  EXPECT_TRUE(f->verify("j", "k"));
  EXPECT_FALSE(f->verify("h", "k"));  // same password, other user
  EXPECT_FALSE(f->verify("jk", ""));
}

TEST(PasswordFile, MakeRoundTrip) {
  for (HashType type : {HashType::kSha512, HashType::kSha512Pbkdf2}) {
    auto h = PasswordHash::make("pässword", type, 50);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->salt.size(), kSaltBytes);
    const std::string text = h->to_string();
    EXPECT_TRUE(text.starts_with(type == HashType::kSha512 ? "$6$" : "$7$50$")) << text;
    std::string error;
    auto back = PasswordHash::parse(text, error);
    ASSERT_TRUE(back) << error;
    EXPECT_TRUE(back->matches("pässword"));
    EXPECT_FALSE(back->matches("password"));
  }
  auto a = PasswordHash::make("x", HashType::kSha512Pbkdf2);
  auto b = PasswordHash::make("x", HashType::kSha512Pbkdf2);
  EXPECT_NE(a->salt, b->salt);  // random salts
  EXPECT_EQ(a->iterations, 101);
}

TEST(PasswordFile, AnySaltLength) {
  // Mosquitto 2.1 writes 64-byte salts: accepted although 2.0 refuses them.
  // Hash computed independently (Python hashlib.pbkdf2_hmac, salt 's' x 64).
  const std::string salt64 = base64_encode(std::string(64, 's'));
  auto f = parse("long:$7$10$" + salt64 + "$8g84PoqExwouDlSHzo9djDpAHaySCPd2E1utbRIvD5AZiTxWKQZ+BasjIMh6tSiVh7rcVFXGgITxUzjYkbkNIA==\n");
  ASSERT_EQ(f->size(), 1u);
  EXPECT_TRUE(f->verify("long", "pw"));
  EXPECT_FALSE(f->verify("long", "pW"));
}

TEST(PasswordFile, MalformedLinesAreSkippedWithMessages) {
  const std::string good = std::string(kPbkdf2Line);
  const std::string hash = good.substr(good.find(':') + 1);
  std::vector<std::string> problems;
  auto f = parse("# comment\n"
                 "\n"
                 "   \t\n"
                 "nocolon\n"
                 ":" + hash + "\n"
                 "empty:\n"
                 "plain:text\n"
                 "u5:$5$abc$def\n"
                 "u6:$6$notb64!!$zzz\n"
                 "u7:$7$abc$W7pYW84cImjLhKJg$/4Ja\n"
                 "u7b:$7$0$W7pYW84cImjLhKJg$/4Ja\n"
                 "u9:$7$101$W7pYW84cImjLhKJg$/4JazF\n"
                 " spaced \t:  " + hash + "  \r\n"
                 "extra:" + hash + ":ignored\n" +
                 good,  // last line without newline
                 &problems);
  EXPECT_EQ(f->size(), 3u);
  EXPECT_TRUE(f->verify("spaced", "mot2passe"));
  EXPECT_TRUE(f->verify("extra", "mot2passe"));
  EXPECT_TRUE(f->verify("sondes", "mot2passe"));
  EXPECT_FALSE(f->contains("nocolon"));
  EXPECT_FALSE(f->contains("plain"));
  ASSERT_EQ(problems.size(), 9u);
  EXPECT_EQ(problems[0], "Warning: pw:4: invalid line in password file (no ':'), ignored.");
  EXPECT_EQ(problems[1], "Warning: pw:5: invalid line in password file (empty username), ignored.");
  EXPECT_EQ(problems[2], "Error: pw:6: Invalid password hash for user empty, removing entry.");
  EXPECT_EQ(problems[3], "Error: pw:7: Invalid password hash type for user plain, removing entry.");
  EXPECT_EQ(problems[4], "Error: pw:8: Invalid password hash type for user u5, removing entry.");
  EXPECT_EQ(problems[5], "Error: pw:9: Unable to decode password salt for user u6, removing entry.");
  EXPECT_EQ(problems[6], "Error: pw:10: Invalid hash iterations for user u7, removing entry.");
  EXPECT_EQ(problems[7], "Error: pw:11: Invalid hash iterations for user u7b, removing entry.");
  EXPECT_EQ(problems[8], "Error: pw:12: Unable to decode password for user u9, removing entry.");
}

TEST(PasswordFile, DuplicatesLastValidWins) {
  // Mosquitto 2.0.11: the later entry for a user wins; a later broken one is
  // dropped and leaves the earlier one in place.
  auto other = PasswordHash::make("autre", HashType::kSha512Pbkdf2)->to_string();
  auto f = parse(std::string(kPbkdf2Line) + "\nsondes:" + other + "\n");
  EXPECT_FALSE(f->verify("sondes", "mot2passe"));
  EXPECT_TRUE(f->verify("sondes", "autre"));
  f = parse(std::string(kPbkdf2Line) + "\nsondes:\n");
  EXPECT_TRUE(f->verify("sondes", "mot2passe"));
}

TEST(PasswordFile, LoadErrors) {
  std::vector<std::string> problems;
  std::string error;
  EXPECT_EQ(PasswordFile::load("/nonexistent/pw", problems, error), nullptr);
  EXPECT_EQ(error, "Unable to open pwfile \"/nonexistent/pw\": No such file or directory.");
  EXPECT_EQ(PasswordFile::load("/tmp", problems, error), nullptr);
  EXPECT_NE(error.find("Is a directory"), std::string::npos) << error;

  const std::string path = testing::TempDir() + "/midge_pw_test";
  std::ofstream(path) << kPbkdf2Line << "\n";
  auto f = PasswordFile::load(path, problems, error);
  ASSERT_NE(f, nullptr) << error;
  EXPECT_TRUE(f->verify("sondes", "mot2passe"));
  std::remove(path.c_str());
}

// M6: the work done for an unknown user equals a wrong password's. Counted
// in hash iterations, not timed.
std::string entry(const std::string& user, const std::string& password, HashType type, int iterations) {
  return user + ":" + PasswordHash::make(password, type, iterations)->to_string() + "\n";
}

TEST(PasswordFileTiming, UnknownUserCostsAWrongPassword) {
  auto f = parse(entry("a", "pa", HashType::kSha512Pbkdf2, 1000) + entry("b", "pb", HashType::kSha512Pbkdf2, 1000) +
                 entry("c", "pc", HashType::kSha512Pbkdf2, 3000));
  uint64_t before = f->hash_work();
  EXPECT_FALSE(f->verify("nobody", "pa"));
  EXPECT_EQ(f->hash_work() - before, 1000u);  // the usual kind: 1000 iterations
  before = f->hash_work();
  EXPECT_FALSE(f->verify("a", "wrong"));
  EXPECT_EQ(f->hash_work() - before, 1000u);
  before = f->hash_work();
  EXPECT_FALSE(f->verify("", ""));
  EXPECT_FALSE(f->verify("nobody", ""));
  EXPECT_EQ(f->hash_work() - before, 2000u);
  before = f->hash_work();
  EXPECT_TRUE(f->verify("a", "pa"));
  EXPECT_EQ(f->hash_work() - before, 1000u);
  before = f->hash_work();
  EXPECT_TRUE(f->verify("a", "pa"));  // remembered: no hashing
  EXPECT_EQ(f->hash_work() - before, 0u);
  EXPECT_FALSE(f->verify("nobody", "x"));  // a failure is never remembered
  EXPECT_FALSE(f->verify("nobody", "x"));
  EXPECT_EQ(f->hash_work() - before, 2000u);
}

TEST(PasswordFileTiming, DummyFollowsTheFilesKind) {
  // All $6$: the dummy is one SHA-512 too.
  auto f = parse(entry("a", "pa", HashType::kSha512, 1) + entry("b", "pb", HashType::kSha512, 1));
  uint64_t before = f->hash_work();
  EXPECT_FALSE(f->verify("nobody", "x"));
  EXPECT_FALSE(f->verify("a", "x"));
  EXPECT_EQ(f->hash_work() - before, 2u);
  // A tie goes to the costlier kind.
  f = parse(entry("a", "pa", HashType::kSha512Pbkdf2, 500) + entry("b", "pb", HashType::kSha512Pbkdf2, 700));
  before = f->hash_work();
  EXPECT_FALSE(f->verify("nobody", "x"));
  EXPECT_EQ(f->hash_work() - before, 700u);
  // No users at all: mosquitto_passwd's default kind.
  f = parse("# empty\n");
  before = f->hash_work();
  EXPECT_FALSE(f->verify("nobody", "x"));
  EXPECT_EQ(f->hash_work() - before, static_cast<uint64_t>(kDefaultIterations));
}

TEST(PasswordFileTiming, RememberedOnlyAfterSuccess) {
  auto f = parse(std::string(kIter1000Line) + "\n");
  EXPECT_FALSE(f->remembered("h", "i"));
  EXPECT_FALSE(f->verify("h", "x"));
  EXPECT_FALSE(f->remembered("h", "x"));
  EXPECT_TRUE(f->verify("h", "i"));
  EXPECT_TRUE(f->remembered("h", "i"));
  EXPECT_FALSE(f->remembered("h", "I"));
  EXPECT_FALSE(f->remembered("hi", ""));
}

TEST(PasswordFile, WarnsWhenReadableByOthers) {
  const std::string path = testing::TempDir() + "/midge_pw_mode_test";
  std::ofstream(path) << kPbkdf2Line << "\n";
  std::vector<std::string> problems;
  std::string error;
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  ASSERT_NE(PasswordFile::load(path, problems, error), nullptr);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "Warning: password file " + path +
                             " is readable by every user (mode 0644); chmod 0600 it, or 0640 for the broker's group.");
  problems.clear();
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  ASSERT_NE(PasswordFile::load(path, problems, error), nullptr);
  EXPECT_TRUE(problems.empty());
  std::remove(path.c_str());
}

TEST(PasswordHash, Base64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_FALSE(base64_decode("Zm9"));
  EXPECT_FALSE(base64_decode("Zm=v"));
  EXPECT_FALSE(base64_decode("Zg==Zg=="));
  EXPECT_FALSE(base64_decode("Z!9v"));
}

TEST(PasswordHash, RejectsBadForms) {
  std::string error;
  EXPECT_FALSE(PasswordHash::parse("$7$101$abc", error));
  EXPECT_FALSE(PasswordHash::parse("$7$-5$Zm9v$Zm9v", error));
  EXPECT_EQ(error, "Invalid hash iterations");
  EXPECT_FALSE(PasswordHash::parse("$7$99999999999$Zm9v$Zm9v", error));
  EXPECT_EQ(error, "Invalid hash iterations");
  EXPECT_FALSE(PasswordHash::parse("$6$Zm9v$Zm9v", error));  // hash not 64 bytes
  EXPECT_EQ(error, "Unable to decode password");
  EXPECT_FALSE(PasswordHash::parse("$6$$" + base64_encode(std::string(64, 'x')), error));
  EXPECT_EQ(error, "Unable to decode password salt");
}

}  // namespace
}  // namespace midge::auth

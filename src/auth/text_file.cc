#include "auth/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace midge::auth {

std::optional<std::string> read_text_file(const std::string& path, std::string_view what, std::string& error,
                                          struct stat& st) {
  st = {};
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    const int err = errno != 0 ? errno : (S_ISDIR(st.st_mode) ? EISDIR : EACCES);
    error = "Unable to open " + std::string(what) + " \"" + path + "\": " + std::strerror(err) + ".";
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = "Unable to read " + std::string(what) + " \"" + path + "\".";
    return std::nullopt;
  }
  return std::move(text).str();
}

}  // namespace midge::auth

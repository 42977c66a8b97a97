// Reading a whole configuration file (password file, ACL file) with the
// error Mosquitto users know: "Unable to open WHAT "PATH": reason."
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

namespace midge::auth {

// The file's text, or nullopt with `error` set. A directory is refused.
// `st` receives the file's status (mode checks).
std::optional<std::string> read_text_file(const std::string& path, std::string_view what, std::string& error,
                                          struct stat& st);

}  // namespace midge::auth

#include "server/store_module.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>

namespace midge::server {
namespace {

// The executable's directory, or empty if /proc/self/exe cannot be read.
std::string exe_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

}  // namespace

std::string store_module_path() {
  if (const char* env = std::getenv("MIDGE_STORE_MODULE"); env && *env) return env;
  const std::string dir = exe_dir();
  const std::string beside = dir + "/" + store::kModuleFile;
  if (::access(beside.c_str(), F_OK) == 0) return beside;
  return dir + "/" MIDGE_STORE_MODULE_DIR "/" + store::kModuleFile;
}

store::OpenFunction load_store_module(std::string& error) {
  const std::string path = store_module_path();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    // dlerror() names the file first, as a rule: then not twice.
    const std::string why = ::dlerror();
    error = "cannot load the store module " + (why.starts_with(path + ":") ? why : path + ": " + why);
    return nullptr;
  }
  void* open = ::dlsym(handle, store::kOpenSymbol);
  if (!open) {
    error = "the store module " + path + " has no " + store::kOpenSymbol + ": " + ::dlerror();
    return nullptr;
  }
  return reinterpret_cast<store::OpenFunction>(open);
}

}  // namespace midge::server

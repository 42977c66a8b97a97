// libFuzzer target for the configuration parser: any text is either a
// Config or an Error whose line lies inside the text; never a crash, a hang
// or an exception. include_dir reads directories, so inputs naming it are
// skipped (the directory walk is not parsing).
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <variant>

#include "check.h"
#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("include") != std::string_view::npos) return 0;
  const auto result = midge::config::parse_string(text, "fuzz.conf");
  if (const auto* error = std::get_if<midge::config::Error>(&result)) {
    const auto lines = std::count(text.begin(), text.end(), '\n') + 1;
    FUZZ_CHECK(error->line >= 0 && error->line <= lines && !error->message.empty());
  }
  return 0;
}

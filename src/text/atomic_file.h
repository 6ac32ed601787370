#pragma once
// Local stand-in for ww::io::write_file_atomic (being added by another change): replaces `path`
// with `contents` so that readers see the old file or the complete new one, never a partial one.
#include <filesystem>
#include <string_view>

namespace ww::text::detail {

// Writes a temporary file in the same folder, fsyncs it, renames it over `path`, fsyncs the
// folder. On any error the temporary file is removed, `path` is untouched and ww::Error is thrown.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace ww::text::detail

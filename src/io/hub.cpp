#include "wattwise/io/hub.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string_view>

#include "wattwise/core/error.h"

namespace ww::io {

namespace fs = std::filesystem;

namespace {

// The hub's repository name rule: letters, digits, '-', '_', '.', not starting or ending with '-'
// or '.', at most 96 characters.
bool valid_name_part(std::string_view part) {
  if (part.empty() || part.size() > 96) return false;
  for (char c : part)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return part.front() != '-' && part.front() != '.' && part.back() != '-' && part.back() != '.';
}

bool valid_revision(std::string_view revision) {
  if (revision.empty() || revision.size() > 256 || revision.find("..") != std::string_view::npos) return false;
  for (char c : revision)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/')) return false;
  return revision.front() != '/';
}

bool is_commit_hash(std::string_view revision) {
  if (revision.size() != 40) return false;
  for (char c : revision)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  return true;
}

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

bool truthy_env(const char* name) {
  const char* value = env(name);
  if (!value) return false;
  std::string v(value);
  for (char& c : v) c = char(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

}  // namespace

std::optional<HubId> parse_hub_id(const std::string& text) {
  if (text.empty() || text.front() == '/' || text.front() == '.' || text.front() == '~') return std::nullopt;
  HubId id;
  id.repo = text;
  id.revision = "main";
  if (const size_t at = text.find('@'); at != std::string::npos) {
    id.repo = text.substr(0, at);
    id.revision = text.substr(at + 1);
    if (!valid_revision(id.revision)) return std::nullopt;
  }
  const size_t slash = id.repo.find('/');
  if (slash == std::string::npos) return valid_name_part(id.repo) ? std::optional<HubId>(id) : std::nullopt;
  if (id.repo.find('/', slash + 1) != std::string::npos) return std::nullopt;
  if (!valid_name_part(std::string_view(id.repo).substr(0, slash)) ||
      !valid_name_part(std::string_view(id.repo).substr(slash + 1)))
    return std::nullopt;
  return id;
}

fs::path hub_cache_dir() {
  if (const char* cache = env("HF_HUB_CACHE")) return cache;
  if (const char* home = env("HF_HOME")) return fs::path(home) / "hub";
  if (const char* xdg = env("XDG_CACHE_HOME")) return fs::path(xdg) / "huggingface" / "hub";
  if (const char* home = env("HOME")) return fs::path(home) / ".cache" / "huggingface" / "hub";
  return fs::path(".cache") / "huggingface" / "hub";
}

fs::path resolve_model_folder(const std::string& text) {
  std::error_code ec;
  if (text.empty() || fs::exists(text, ec)) return text;
  const std::optional<HubId> id = parse_hub_id(text);
  if (!id) return text;  // not an id: the loader says the path does not exist
  std::string folder_name = "models--" + id->repo;
  for (size_t at = folder_name.find('/'); at != std::string::npos; at = folder_name.find('/', at))
    folder_name.replace(at, 1, "--");
  const fs::path repo_dir = hub_cache_dir() / folder_name;
  std::string commit = id->revision;
  if (!is_commit_hash(commit)) {
    commit.clear();  // stays empty when the ref file is missing
    std::ifstream ref(repo_dir / "refs" / id->revision);
    std::getline(ref, commit);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  }
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  if (!commit.empty() && fs::is_directory(snapshot, ec)) return snapshot;
  const std::string where = commit.empty() ? (repo_dir / "refs" / id->revision).string() : snapshot.string();
  fail(text, ": no such folder, and not in the Hugging Face cache as ", id->repo, "@", id->revision, " (no ", where,
       truthy_env("HF_HUB_OFFLINE") ? "; HF_HUB_OFFLINE is set" : "",
       "). wattwise reads the hub's cache but does not download: fetch it once (`hf download ", id->repo,
       id->revision == "main" ? std::string() : " --revision " + id->revision,
       "`, or transformers' from_pretrained), set HF_HOME or HF_HUB_CACHE to the cache you use, or give a folder");
}

}  // namespace ww::io

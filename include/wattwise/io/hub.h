#pragma once
// Hugging Face hub ids wherever a model (or tokenizer) folder is taken: "org/name", "name", with
// "@revision" (a branch, a tag or a commit). A path that exists always wins; otherwise the id is
// looked up in the hub's local cache, laid out as huggingface_hub writes it
// (<cache>/models--org--name/refs/<revision> holding the commit, snapshots/<commit>/ the files), so
// a model downloaded once by transformers, `hf download` or huggingface_hub is found by its id.
#include <filesystem>
#include <optional>
#include <string>

namespace ww::io {

struct HubId {
  std::string repo;      // "org/name" or "name"
  std::string revision;  // "main" unless "@revision" was given
};

// `text` as a hub id, or nullopt when it cannot be one (an absolute or ./ path, a name with
// characters the hub does not allow, more than one '/').
std::optional<HubId> parse_hub_id(const std::string& text);

// The hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (huggingface_hub's order).
std::filesystem::path hub_cache_dir();

// The folder `text` names: itself when it exists (or is not a hub id); for a hub id, its snapshot
// in the cache. An id that is not there is an error naming the id, the folder looked in and what
// to do (wattwise does not download; HF_HUB_OFFLINE=1 is said when set).
std::filesystem::path resolve_model_folder(const std::string& text);

}  // namespace ww::io

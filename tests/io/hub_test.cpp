// Hugging Face hub ids resolved in the hub's local cache (io/hub.h), against a cache laid out as
// huggingface_hub writes it: models--org--name/refs/<revision> and snapshots/<commit>/.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "wattwise/io/hub.h"

using namespace ww;
namespace fs = std::filesystem;
using ww::testing::expect_error;

namespace {

constexpr const char* kMain = "0123456789abcdef0123456789abcdef01234567";
constexpr const char* kTag = "89abcdef0123456789abcdef0123456789abcdef";

// A cache holding org/tiny at main and at tag v1, and the one-part id "legacy"; HF_HUB_CACHE points
// at it for the test's life (and HF_HUB_OFFLINE is cleared).
class HubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ww_hub_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    add("models--org--tiny", "main", kMain);
    add("models--org--tiny", "v1", kTag);
    add("models--legacy", "main", kMain);
    ::setenv("HF_HUB_CACHE", root_.c_str(), 1);
    ::unsetenv("HF_HUB_OFFLINE");
  }
  void TearDown() override {
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_HUB_OFFLINE");
    fs::remove_all(root_);
  }
  void add(const std::string& repo, const std::string& ref, const std::string& commit) {
    fs::create_directories(root_ / repo / "refs");
    fs::create_directories(root_ / repo / "snapshots" / commit);
    std::ofstream(root_ / repo / "refs" / ref) << commit;  // no newline, as huggingface_hub writes it
    std::ofstream(root_ / repo / "snapshots" / commit / "config.json") << "{}";
  }
  fs::path root_;
};

}  // namespace

TEST(HubId, ParsesTheHubsNamesAndRevisions) {
  auto id = io::parse_hub_id("sentence-transformers/all-MiniLM-L6-v2");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->repo, "sentence-transformers/all-MiniLM-L6-v2");
  EXPECT_EQ(id->revision, "main");
  id = io::parse_hub_id("gpt2@refs/pr/1");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->repo, "gpt2");
  EXPECT_EQ(id->revision, "refs/pr/1");
  for (const char* not_an_id : {"", "/abs/path", "./here", "../up", "~/home", "a/b/c", "org/-bad", "org/na me",
                                "org/name@", "org/name@../x"})
    EXPECT_FALSE(io::parse_hub_id(not_an_id)) << not_an_id;
}

TEST(HubId, TheCacheFollowsHuggingFaceHubsVariables) {
  ::setenv("HF_HUB_CACHE", "/c/hub", 1);
  ::setenv("HF_HOME", "/h", 1);
  EXPECT_EQ(io::hub_cache_dir(), fs::path("/c/hub"));
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(io::hub_cache_dir(), fs::path("/h/hub"));
  ::unsetenv("HF_HOME");
  ::setenv("XDG_CACHE_HOME", "/x", 1);
  EXPECT_EQ(io::hub_cache_dir(), fs::path("/x/huggingface/hub"));
  ::unsetenv("XDG_CACHE_HOME");
}

TEST_F(HubCache, AnIdIsItsSnapshotAtTheRevision) {
  EXPECT_EQ(io::resolve_model_folder("org/tiny"), root_ / "models--org--tiny" / "snapshots" / kMain);
  EXPECT_EQ(io::resolve_model_folder("org/tiny@v1"), root_ / "models--org--tiny" / "snapshots" / kTag);
  EXPECT_EQ(io::resolve_model_folder(std::string("org/tiny@") + kTag), root_ / "models--org--tiny" / "snapshots" / kTag);
  EXPECT_EQ(io::resolve_model_folder("legacy"), root_ / "models--legacy" / "snapshots" / kMain);
}

TEST_F(HubCache, AFolderThatExistsWinsAndAPathIsNeverLookedUp) {
  const fs::path here = fs::current_path();
  const fs::path local = root_ / "work";
  fs::create_directories(local / "org" / "tiny");
  fs::current_path(local);
  EXPECT_EQ(io::resolve_model_folder("org/tiny"), fs::path("org/tiny"));  // the local folder
  fs::current_path(here);
  EXPECT_EQ(io::resolve_model_folder("/no/such/folder"), fs::path("/no/such/folder"));  // the loader's error follows
  EXPECT_EQ(io::resolve_model_folder(""), fs::path(""));
}

TEST_F(HubCache, AnIdNotInTheCacheSaysWhereItLookedAndWhatToDo) {
  expect_error([] { io::resolve_model_folder("org/missing"); },
               {"org/missing: no such folder, and not in the Hugging Face cache as org/missing@main",
                "models--org--missing/refs/main", "hf download org/missing", "HF_HOME or HF_HUB_CACHE"});
  expect_error([] { io::resolve_model_folder("org/tiny@v2"); }, {"org/tiny@v2", "refs/v2", "--revision v2"});
  // A ref whose snapshot is gone (a cache cleaned by hand).
  fs::remove_all(root_ / "models--org--tiny" / "snapshots" / kTag);
  expect_error([] { io::resolve_model_folder("org/tiny@v1"); }, {std::string("snapshots/") + kTag});
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  expect_error([] { io::resolve_model_folder("org/missing"); }, {"HF_HUB_OFFLINE is set"});
}

// Data sets (IMDB, GLUE, CSV/TSV/JSONL) and splitting. Every format is exercised on small files the
// test writes; the real SST-2 and IMDB are read when present.
#include <gtest/gtest.h>

#include "test_util.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <thread>
#include <unistd.h>

#include "wattwise/core/error.h"
#include "wattwise/core/rng.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "text/whitespace_tokenizer.h"

using namespace ww;
using namespace ww::text;
namespace fs = std::filesystem;

namespace {

using ww::text::testing::WhitespaceTokenizer;

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("ww_datasets_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" +
             info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
}

using ww::testing::expect_error;

std::map<int32_t, size_t> label_counts(const std::vector<Example>& examples) {
  std::map<int32_t, size_t> counts;
  for (const Example& e : examples) ++counts[e.label];
  return counts;
}

std::vector<std::string> sources(const std::vector<Example>& examples) {
  std::vector<std::string> out;
  for (const Example& e : examples) out.push_back(e.source);
  return out;
}

// N examples in one file with labels spread as `per_label` says (label i repeated per_label[i]).
std::string labelled_csv(const std::vector<int>& per_label) {
  std::string csv = "text,label\n";
  int n = 0;
  for (size_t label = 0; label < per_label.size(); ++label)
    for (int i = 0; i < per_label[label]; ++i)
      csv += "example number " + std::to_string(n++) + "," + std::to_string(label) + "\n";
  return csv;
}

bool have_tar() { return std::system("tar --version >/dev/null 2>&1") == 0; }

// A miniature aclImdb: `per_folder` reviews in each of train/test × neg/pos, plus the distractors
// of the real layout (unsup, vocabulary and feature files).
void write_mini_imdb(const fs::path& root, int per_folder) {
  for (std::string split : {"train", "test"})
    for (std::string polarity : {"neg", "pos"})
      for (int i = 0; i < per_folder; ++i) {
        int rating = polarity == "pos" ? 7 + i % 4 : 1 + i % 4;
        write_file(root / split / polarity / (std::to_string(i) + "_" + std::to_string(rating) + ".txt"),
                   split + " " + polarity + " review " + std::to_string(i) +
                       ".<br /><br />It was   " + (polarity == "pos" ? "great" : "awful") + ".");
      }
  write_file(root / "train" / "unsup" / "0_0.txt", "unlabelled review");
  write_file(root / "train" / "labeledBow.feat", "0:1 1:2\n");
  write_file(root / "imdb.vocab", "the\nand\n");
  write_file(root / "README", "Large Movie Review Dataset v1.0\n");
}

int run_tar(const std::string& args) { return std::system(("tar " + args + " 2>/dev/null").c_str()); }

}  // namespace

// ---- generic files ------------------------------------------------------------------------------

TEST(Datasets, CsvQuotingPairsAndStringLabels) {
  TempDir dir;
  // RFC 4180: commas, quotes and a line break inside quotes; CRLF line ends; a blank line.
  write_file(dir / "pairs.csv",
             "premise,hypothesis,label\r\n"
             "\"A man, a plan\",\"He said \"\"hi\"\"\",yes\r\n"
             "\"two\nlines\",plain,no\r\n"
             "\r\n"
             "third,\"\",yes\r\n");
  DataOptions options;
  options.text_column = "premise";
  options.text_pair_column = "hypothesis";
  options.split_ratios = {1, 0, 0};  // keep everything in train
  Dataset d = load_dataset(dir / "pairs.csv", options);
  EXPECT_EQ(d.name, "pairs");
  EXPECT_EQ(d.format, "csv");
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"no", "yes"}));
  ASSERT_EQ(d.split("train").size(), 3u);
  const auto& train = d.split("train");
  EXPECT_EQ(train[0].text, "A man, a plan");
  EXPECT_EQ(*train[0].text_pair, "He said \"hi\"");
  EXPECT_EQ(train[0].label, 1);
  EXPECT_EQ(train[1].text, "two\nlines");
  EXPECT_EQ(train[1].label, 0);
  EXPECT_EQ(*train[2].text_pair, "");
  // Sources name the line where each record starts (the quoted line break moves the count on).
  EXPECT_EQ(train[0].source, (dir / "pairs.csv").string() + ":2");
  EXPECT_EQ(train[1].source, (dir / "pairs.csv").string() + ":3");
  EXPECT_EQ(train[2].source, (dir / "pairs.csv").string() + ":6");
  bool said_mapping = false;
  for (const std::string& note : d.notes)
    said_mapping |= note.find("sorted unique values map to class ids: no=0, yes=1") != std::string::npos;
  EXPECT_TRUE(said_mapping);
  EXPECT_TRUE(d.derived_splits.empty());
}

TEST(Datasets, TsvIntegerLabelsAndDerivedSplits) {
  TempDir dir;
  std::string tsv = "id\ttext\tlabel\n";
  for (int i = 0; i < 40; ++i)
    tsv += std::to_string(i) + "\tsentence \"" + std::to_string(i) + "\" here\t" + std::to_string(i % 3) + "\n";
  write_file(dir / "data.tsv", tsv);
  Dataset d = load_dataset(dir / "data.tsv");
  EXPECT_EQ(d.format, "tsv");
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_FALSE(d.regression);
  // One split in the file: dev and test are carved out, 80/10/10, and said so.
  EXPECT_EQ(d.derived_splits, (std::vector<std::string>{"dev", "test"}));
  EXPECT_EQ(d.split("train").size() + d.split("dev").size() + d.split("test").size(), 40u);
  EXPECT_NEAR(double(d.split("train").size()), 32, 2);
  EXPECT_EQ(d.split("train")[0].text, "sentence \"0\" here");  // TSV has no quoting
  EXPECT_EQ(d.split("validation").size(), d.split("dev").size());
}

TEST(Datasets, JsonlNumbersStringsBooleansAndRegression) {
  TempDir dir;
  write_file(dir / "a.jsonl",
             "{\"text\": \"good\", \"label\": 1}\n\n"
             "{\"text\": \"bad\", \"label\": 0, \"extra\": [1, 2]}\n"
             "{\"text\": \"fine\", \"label\": true}\n");
  DataOptions keep;
  keep.split_ratios = {1, 0, 0};
  Dataset a = load_dataset(dir / "a.jsonl", keep);
  EXPECT_EQ(a.format, "jsonl");
  EXPECT_EQ(a.label_names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(label_counts(a.split("train")), (std::map<int32_t, size_t>{{0, 1}, {1, 2}}));
  EXPECT_EQ(a.split("train")[1].source, (dir / "a.jsonl").string() + ":3");

  write_file(dir / "scores.jsonl",
             "{\"text\": \"x\", \"label\": 0.5}\n{\"text\": \"y\", \"label\": 4}\n{\"text\": \"z\", \"label\": \"2.25\"}\n");
  Dataset r = load_dataset(dir / "scores.jsonl", keep);
  EXPECT_TRUE(r.regression);
  EXPECT_EQ(r.num_labels(), 1);
  EXPECT_FLOAT_EQ(r.split("train")[0].target, 0.5f);
  EXPECT_FLOAT_EQ(r.split("train")[2].target, 2.25f);

  DataOptions as_classes = keep;
  as_classes.label_kind = LabelKind::classification;
  Dataset c = load_dataset(dir / "scores.jsonl", as_classes);
  EXPECT_FALSE(c.regression);
  EXPECT_EQ(c.label_names, (std::vector<std::string>{"0.5", "2.25", "4"}));
}

TEST(Datasets, FixedLabelNamesAcceptNamesAndIndices) {
  TempDir dir;
  write_file(dir / "d.csv", "text,label\na,positive\nb,0\nc,negative\n");
  DataOptions options;
  options.split_ratios = {1, 0, 0};
  options.label_names = {"negative", "positive"};
  Dataset d = load_dataset(dir / "d.csv", options);
  EXPECT_EQ(d.label_names, options.label_names);
  EXPECT_EQ(d.split("train")[0].label, 1);
  EXPECT_EQ(d.split("train")[1].label, 0);
  EXPECT_EQ(d.split("train")[2].label, 0);
  write_file(dir / "e.csv", "text,label\na,positive\nb,neutral\n");
  expect_error([&] { load_dataset(dir / "e.csv", options); },
               {(dir / "e.csv").string() + ":3", "label 'neutral' is not in the label set",
                "negative=0, positive=1"});
}

TEST(Datasets, SplitFolderOfGenericFiles) {
  TempDir dir;
  write_file(dir / "reviews" / "train.jsonl", "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"neg\"}\n");
  write_file(dir / "reviews" / "validation.jsonl", "{\"text\": \"c\", \"label\": \"neu\"}\n");
  write_file(dir / "reviews" / "notes.txt", "ignored");
  Dataset d = load_dataset(dir / "reviews");
  EXPECT_EQ(d.name, "reviews");
  EXPECT_EQ(d.split_names(), (std::vector<std::string>{"dev", "train"}));
  EXPECT_TRUE(d.derived_splits.empty());  // a dev split exists: nothing carved
  // The label set spans every split.
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"neg", "neu", "pos"}));
  EXPECT_EQ(d.split("dev")[0].label, 1);
  expect_error([&] { d.split("test"); }, {"no split 'test'", "available: dev, train"});
}

// ---- GLUE ---------------------------------------------------------------------------------------

namespace {

struct GlueCase {
  std::string folder;
  std::string task;
  std::map<std::string, std::string> files;
};

// Miniature copies of each task's layout as the GLUE download script writes it.
std::vector<GlueCase> glue_cases() {
  return {
      {"CoLA", "cola",
       {{"train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n"},
        {"dev.tsv", "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"},
        {"test.tsv", "index\tsentence\n0\tBill whistled past the house.\n"}}},
      {"SST-2", "sst2",
       {{"train.tsv", "sentence\tlabel\nhide new secretions from the parental units \t0\nthe greatest musicians \t1\n"},
        {"dev.tsv", "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"}}},
      {"MRPC", "mrpc",
       {{"train.tsv", "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                      "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \" the witness \" .\n"
                      "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's .\n"},
        {"dev.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said .\tHe stated .\n"}}},
      {"QQP", "qqp",
       {{"train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                      "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration?\t0\n"
                      "\tWas Muhammad a real historical figure?\t0\n"
                      "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n"},
        {"dev.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tHow?\t0\n"}}},
      {"QNLI", "qnli",
       {{"train.tsv", "index\tquestion\tsentence\tlabel\n0\tWhat came into force?\tThe law came into force.\tentailment\n"
                      "1\tWhat is the name?\tIt rained.\tnot_entailment\n"},
        {"dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tNobody.\tnot_entailment\n"}}},
      {"RTE", "rte",
       {{"train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tNo WMD found.\tWMD found.\tnot_entailment\n"
                      "1\tA place of sorrow.\tPope died.\tentailment\n"},
        {"dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tDana Reeve died.\tChristopher Reeve died.\tnot_entailment\n"}}},
      {"WNLI", "wnli",
       {{"train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin.\tThe pin had a hole.\t1\n"
                      "1\tJohn could not see.\tJohn was short.\t0\n"},
        {"dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged.\tThe hair is clogged.\t0\n"}}},
      {"MNLI", "mnli",
       {{"train.tsv", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                      "0\t31193\t31193n\tgovernment\t( ( a ) )\t( b )\t(ROOT)\t(ROOT)\tConceptually cream skimming has two dimensions.\tProduct and geography are what make it work.\tneutral\tneutral\n"
                      "1\t101457\t101457e\ttelephone\t( a )\t( b )\t(ROOT)\t(ROOT)\tyou know during the season\tYou lose the things.\tentailment\tentailment\n"
                      "2\t134793\t134793e\tfiction\t( a )\t( b )\t(ROOT)\t(ROOT)\tOne of our number.\tA member will carry out.\tcontradiction\tcontradiction\n"},
        {"dev_matched.tsv", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
                            "0\t63735\t63735n\tslate\t( a )\t( b )\t(ROOT)\t(ROOT)\tThe new rights are nice.\tEveryone really likes them.\tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n"},
        {"dev_mismatched.tsv", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
                               "0\t75290\t75290c\tletters\t( a )\t( b )\t(ROOT)\t(ROOT)\tYour contribution helped.\tYour contributions were of no help.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n"},
        {"test_matched.tsv", "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\n"}}},
      {"STS-B", "stsb",
       {{"train.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                      "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
                      "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing a flute.\tA man is playing a bamboo flute.\t3.800\n"},
        {"dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                    "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000\n"}}},
  };
}

void write_glue(const fs::path& dir, const GlueCase& c) {
  for (const auto& [file, content] : c.files) write_file(dir / file, content);
}

}  // namespace

TEST(Datasets, GlueTaskLayouts) {
  TempDir dir;
  for (const GlueCase& c : glue_cases()) {
    SCOPED_TRACE(c.folder);
    write_glue(dir / c.folder, c);
    Dataset d = load_dataset(dir / c.folder);
    EXPECT_EQ(d.name, c.task);
    EXPECT_EQ(d.format, "glue");
    EXPECT_TRUE(d.derived_splits.empty());
    EXPECT_FALSE(d.splits.count("test"));  // GLUE withholds test labels
    if (c.task == "mnli") {
      EXPECT_EQ(d.split_names(), (std::vector<std::string>{"dev_matched", "dev_mismatched", "train"}));
      EXPECT_EQ(d.label_names, (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
      EXPECT_EQ(d.resolve_split("dev"), "dev_matched");
      EXPECT_EQ(d.split("train")[0].label, 1);
      EXPECT_EQ(d.split("train")[2].label, 2);
      EXPECT_EQ(*d.split("train")[0].text_pair, "Product and geography are what make it work.");
      EXPECT_EQ(d.split("dev_mismatched")[0].label, 2);
      bool noted = false;
      for (const auto& note : d.notes) noted |= note.find("test_matched.tsv not loaded") != std::string::npos;
      EXPECT_TRUE(noted);
      continue;
    }
    EXPECT_EQ(d.split_names(), (std::vector<std::string>{"dev", "train"}));
    const Example& first = d.split("train")[0];
    if (c.task == "cola") {
      EXPECT_EQ(first.text, "Our friends won't buy this analysis.");
      EXPECT_EQ(first.label, 1);
      EXPECT_EQ(d.split("train")[1].label, 0);
      EXPECT_EQ(d.label_names, (std::vector<std::string>{"unacceptable", "acceptable"}));
      EXPECT_FALSE(first.text_pair);
    } else if (c.task == "sst2") {
      EXPECT_EQ(first.text, "hide new secretions from the parental units ");
      EXPECT_EQ(d.split("train")[1].label, 1);
      EXPECT_FALSE(first.text_pair);
    } else if (c.task == "mrpc") {
      EXPECT_EQ(first.text, "Amrozi accused his brother .");
      EXPECT_EQ(*first.text_pair, "Referring to him as only \" the witness \" .");
      EXPECT_EQ(first.label, 1);
      EXPECT_EQ(d.label_names[1], "equivalent");
    } else if (c.task == "qqp") {
      // The known malformed row (line 3) is skipped and reported, as the reference loaders do.
      ASSERT_EQ(d.split("train").size(), 2u);
      EXPECT_EQ(d.split("train")[1].label, 1);
      EXPECT_EQ(d.split("train")[1].source, (dir / c.folder / "train.tsv").string() + ":4");
      bool noted = false;
      for (const auto& note : d.notes) noted |= note.find("skipped 1 malformed rows") != std::string::npos;
      EXPECT_TRUE(noted);
    } else if (c.task == "qnli" || c.task == "rte") {
      EXPECT_EQ(d.label_names, (std::vector<std::string>{"entailment", "not_entailment"}));
      EXPECT_EQ(first.label, c.task == "qnli" ? 0 : 1);
      EXPECT_TRUE(first.text_pair);
    } else if (c.task == "wnli") {
      EXPECT_EQ(d.label_names, (std::vector<std::string>{"not_entailment", "entailment"}));
      EXPECT_EQ(first.label, 1);
    } else if (c.task == "stsb") {
      EXPECT_TRUE(d.regression);
      EXPECT_FLOAT_EQ(first.target, 5.0f);
      EXPECT_FLOAT_EQ(d.split("train")[1].target, 3.8f);
      EXPECT_EQ(*first.text_pair, "An air plane is taking off.");
    }
  }
}

TEST(Datasets, GlueTasksRecognisedByHeaderWithoutTheirFolderName) {
  TempDir dir;
  std::vector<GlueCase> cases = glue_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const GlueCase& c = cases[i];
    SCOPED_TRACE(c.folder);
    fs::path folder = dir / ("task_" + std::to_string(i) + "_data");
    write_glue(folder, c);
    EXPECT_EQ(load_dataset(folder).name, c.task);
  }
}

TEST(Datasets, GlueErrorsNameFileAndLine) {
  TempDir dir;
  write_file(dir / "SST-2" / "train.tsv", "text\tlabel\nfine\t1\n");
  expect_error([&] { load_dataset(dir / "SST-2"); },
               {(dir / "SST-2" / "train.tsv").string() + ":1", "not a SST-2 file", "sentence | label"});
  write_file(dir / "SST-2" / "train.tsv", "sentence\tlabel\nfine\t1\nbad\t7\n");
  expect_error([&] { load_dataset(dir / "SST-2"); },
               {(dir / "SST-2" / "train.tsv").string() + ":3", "label '7' is not in the label set of sst2",
                "negative=0, positive=1"});
  write_file(dir / "SST-2" / "train.tsv", "sentence\tlabel\nfine\t1\nextra\tfield\t1\n");
  expect_error([&] { load_dataset(dir / "SST-2"); },
               {"train.tsv:3", "expected 2 tab-separated fields as in the header, found 3"});
  GlueCase mnli = glue_cases()[7];
  mnli.files["dev_matched.tsv"] = std::string(mnli.files["dev_matched.tsv"]).replace(
      mnli.files["dev_matched.tsv"].rfind("neutral"), 7, "maybe");
  write_glue(dir / "MNLI", mnli);
  expect_error([&] { load_dataset(dir / "MNLI"); },
               {"dev_matched.tsv:2", "label 'maybe'", "entailment=0, neutral=1, contradiction=2"});
  write_file(dir / "CoLA" / "train.tsv", "gj04\t1\t\tFine.\ngj04\t1\tOnly three\n");
  expect_error([&] { load_dataset(dir / "CoLA"); }, {"CoLA/train.tsv:2", "expected 4 tab-separated fields"});
}

// ---- IMDB ---------------------------------------------------------------------------------------

TEST(Datasets, ImdbFolderAndArchiveAgree) {
  if (!have_tar()) GTEST_SKIP() << "no tar program to build the test archive";
  TempDir dir;
  write_mini_imdb(dir / "aclImdb", 6);
  DataOptions options;
  options.clean_html = true;
  options.collapse_whitespace = true;
  Dataset folder = load_dataset(dir / "aclImdb", options);
  EXPECT_EQ(folder.name, "imdb");
  EXPECT_EQ(folder.label_names, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(folder.split("test").size(), 12u);
  EXPECT_EQ(label_counts(folder.split("test")), (std::map<int32_t, size_t>{{0, 6}, {1, 6}}));
  // No dev in IMDB: carved out of train with train:dev = 0.8:0.1, per label.
  EXPECT_EQ(folder.derived_splits, (std::vector<std::string>{"dev"}));
  EXPECT_EQ(folder.split("train").size() + folder.split("dev").size(), 12u);
  EXPECT_EQ(label_counts(folder.split("dev")), (std::map<int32_t, size_t>{{0, 1}, {1, 1}}));
  // Cleaning: tags gone, whitespace collapsed; (label, id) order.
  EXPECT_EQ(folder.split("test")[0].text, "test neg review 0. It was awful.");
  EXPECT_EQ(folder.split("test")[6].text, "test pos review 0. It was great.");

  // The parent folder works too.
  EXPECT_EQ(load_dataset(dir.path(), options).split("test").size(), 12u);

  for (std::string format : {"gnu", "ustar", "pax"}) {
    SCOPED_TRACE(format);
    fs::path archive = dir / ("aclImdb_" + format + ".tar.gz");
    ASSERT_EQ(run_tar("--format=" + format + " -czf " + archive.string() + " -C " +
                      dir.path().string() + " aclImdb"), 0);
    Dataset packed = load_dataset(archive, options);
    ASSERT_EQ(packed.split_names(), folder.split_names());
    for (const std::string& split : folder.split_names()) {
      const auto& a = folder.split(split);
      const auto& b = packed.split(split);
      ASSERT_EQ(a.size(), b.size()) << split;
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].text, b[i].text);
        EXPECT_EQ(a[i].label, b[i].label);
      }
    }
    EXPECT_NE(packed.split("test")[0].source.find(archive.string() + ":aclImdb/test/neg/0_1.txt"),
              std::string::npos) << packed.split("test")[0].source;
  }
}

TEST(Datasets, ImdbArchiveLongMemberNames) {
  if (!have_tar()) GTEST_SKIP() << "no tar program to build the test archive";
  TempDir dir;
  // Paths past tar's 100-byte name field: GNU 'L' records, ustar prefixes and pax 'x' records.
  std::string deep = "a_folder_name_long_enough_to_push_member_paths_past_one_hundred_bytes_in_total_"
                     "really_quite_long";
  write_mini_imdb(dir / deep / "aclImdb", 2);
  for (std::string format : {"gnu", "ustar", "pax"}) {
    SCOPED_TRACE(format);
    fs::path archive = dir / (format + ".tgz");
    ASSERT_EQ(run_tar("--format=" + format + " -czf " + archive.string() + " -C " +
                      dir.path().string() + " " + deep), 0);
    Dataset d = load_dataset(archive);
    EXPECT_EQ(d.split("test").size(), 4u);
    EXPECT_EQ(d.split("train").size() + d.split("dev").size(), 4u);
  }
}

TEST(Datasets, ImdbArchiveErrors) {
  if (!have_tar()) GTEST_SKIP() << "no tar program to build the test archive";
  TempDir dir;
  write_mini_imdb(dir / "aclImdb", 40);
  write_file(dir / "aclImdb" / "train" / "pos" / "999_9.txt", "caf\xE9 latin-1 review");
  fs::path archive = dir / "bad_utf8.tar.gz";
  ASSERT_EQ(run_tar("-czf " + archive.string() + " -C " + dir.path().string() + " aclImdb"), 0);
  expect_error([&] { load_dataset(archive); },
               {archive.string() + ":aclImdb/train/pos/999_9.txt", "invalid UTF-8", "0xE9"});
  expect_error([&] { load_dataset(dir / "aclImdb"); }, {"999_9.txt", "invalid UTF-8"});

  fs::remove(dir / "aclImdb" / "train" / "pos" / "999_9.txt");
  fs::path good = dir / "good.tar.gz";
  ASSERT_EQ(run_tar("-czf " + good.string() + " -C " + dir.path().string() + " aclImdb"), 0);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::path truncated = dir / "truncated.tar.gz";
  write_file(truncated, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load_dataset(truncated); }, {truncated.string(), "truncated archive"});

  fs::path not_tar = dir / "not_tar.tar.gz";
  write_file(not_tar, std::string(2048, 'x'));
  expect_error([&] { load_dataset(not_tar); }, {not_tar.string(), "not a tar archive"});

  fs::path empty_tar = dir / "empty.tar.gz";
  ASSERT_EQ(run_tar("-czf " + empty_tar.string() + " -C " + dir.path().string() + " aclImdb/README"), 0);
  expect_error([&] { load_dataset(empty_tar); }, {empty_tar.string(), "no reviews found"});
}

// ---- bad input ----------------------------------------------------------------------------------

TEST(Datasets, BadInputErrorsNameFileLineAndProblem) {
  TempDir dir;
  auto file = [&](const std::string& name, const std::string& content) {
    write_file(dir / name, content);
    return dir / name;
  };
  auto where = [&](const std::string& name, int line) {
    return (dir / name).string() + ":" + std::to_string(line);
  };
  expect_error([&] { load_dataset(file("nocol.csv", "sentence,label\na,0\n")); },
               {where("nocol.csv", 1), "missing column 'text'", "the header has: sentence, label",
                "text_column"});
  DataOptions pair_options;
  pair_options.text_pair_column = "second";
  expect_error([&] { load_dataset(file("nopair.tsv", "text\tlabel\na\t0\n"), pair_options); },
               {where("nopair.tsv", 1), "missing column 'second'", "text_pair_column"});
  expect_error([&] { load_dataset(file("nolabel.jsonl", "{\"text\": \"a\"}\n")); },
               {where("nolabel.jsonl", 1), "missing key 'label'", "the object has: text"});
  expect_error([&] { load_dataset(file("empty.csv", "")); }, {(dir / "empty.csv").string(), "empty file"});
  expect_error([&] { load_dataset(file("blank.jsonl", "\n  \n")); }, {"blank.jsonl", "empty file"});
  expect_error([&] { load_dataset(file("header_only.tsv", "text\tlabel\n")); },
               {"header_only.tsv", "no examples after the header"});
  expect_error([&] { load_dataset(file("latin1.csv", "text,label\nok,0\ncaf\xE9,1\n")); },
               {where("latin1.csv", 3), "invalid UTF-8", "0xE9", "byte 4 of the line"});
  expect_error([&] { load_dataset(file("overlong.tsv", "text\tlabel\n\xC0\xAF\t0\n")); },
               {where("overlong.tsv", 2), "invalid UTF-8"});
  expect_error([&] { load_dataset(file("bad.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": }\n")); },
               {where("bad.jsonl", 2), "malformed JSON"});
  expect_error([&] { load_dataset(file("array.jsonl", "[1, 2]\n")); },
               {where("array.jsonl", 1), "expected one JSON object per line"});
  expect_error([&] { load_dataset(file("num_text.jsonl", "{\"text\": 5, \"label\": 0}\n")); },
               {where("num_text.jsonl", 1), "key 'text' must be a string"});
  expect_error([&] { load_dataset(file("open.csv", "text,label\n\"never closed,0\nx,1\n")); },
               {where("open.csv", 2), "malformed CSV", "never closed"});
  expect_error([&] { load_dataset(file("after.csv", "text,label\n\"quoted\"tail,0\n")); },
               {where("after.csv", 2), "malformed CSV", "after a closing quote"});
  expect_error([&] { load_dataset(file("fields.csv", "text,label\na,0\nb,1,extra\n")); },
               {where("fields.csv", 3), "expected 2 comma-separated fields", "found 3"});
  expect_error([&] { load_dataset(file("emptylabel.csv", "text,label\na,\n")); },
               {where("emptylabel.csv", 2), "empty label"});
  expect_error([&] { load_dataset(file("negative.csv", "text,label\na,0\nb,-1\n")); },
               {where("negative.csv", 3), "label '-1' is negative"});
  expect_error([&] { load_dataset(file("gap.csv", "text,label\na,0\nb,2\n")); },
               {where("gap.csv", 3), "id 1 never appears", "label_names"});
  DataOptions regression;
  regression.label_kind = LabelKind::regression;
  expect_error([&] { load_dataset(file("words.csv", "text,label\na,0.5\nb,high\n"), regression); },
               {where("words.csv", 3), "label 'high' is not a number"});
  expect_error([&] { load_dataset(file("data.parquet", "PAR1")); }, {"data.parquet", "unknown data file type"});
  expect_error([&] { load_dataset(dir / "missing.csv"); }, {"missing.csv", "no such file or folder"});
  fs::create_directories(dir / "nothing");
  expect_error([&] { load_dataset(dir / "nothing"); }, {"nothing", "not a data set folder"});
  DataOptions bad_ratio;
  bad_ratio.split_ratios.dev = -0.1;
  expect_error([&] { load_dataset(file("ok.csv", "text,label\na,0\n"), bad_ratio); },
               {"split ratio for dev", ">= 0"});
}

// ---- cleaning, splitting, sampling --------------------------------------------------------------

TEST(Datasets, CleanText) {
  EXPECT_EQ(clean_text("One.<br /><br />Two.", true, false), "One.  Two.");
  EXPECT_EQ(clean_text("One.<br /><br />Two.", true, true), "One. Two.");
  EXPECT_EQ(clean_text("<i>Great</i> film <BR/>", true, true), "Great film");
  EXPECT_EQ(clean_text("a < b and c > d, I <3 it", true, true), "a < b and c > d, I <3 it");
  EXPECT_EQ(clean_text("  tabs\tand\n\nlines  ", false, true), "tabs and lines");
  EXPECT_EQ(clean_text("keep <br /> as is", false, false), "keep <br /> as is");
  EXPECT_EQ(clean_text("", true, true), "");
}

TEST(Datasets, StratifiedSplitKeepsLabelProportions) {
  TempDir dir;
  std::vector<int> per_label = {97, 50, 13, 1};
  write_file(dir / "imbalanced.csv", labelled_csv(per_label));
  Dataset d = load_dataset(dir / "imbalanced.csv");
  ASSERT_EQ(d.derived_splits, (std::vector<std::string>{"dev", "test"}));
  std::map<std::string, double> share = {{"train", 0.8}, {"dev", 0.1}, {"test", 0.1}};
  std::set<std::string> seen;
  size_t total = 0;
  for (const auto& [split, ratio] : share) {
    std::map<int32_t, size_t> counts = label_counts(d.split(split));
    for (size_t label = 0; label < per_label.size(); ++label) {
      double ideal = ratio * per_label[label];
      EXPECT_LE(std::abs(double(counts[int32_t(label)]) - ideal), 1.0)
          << split << " label " << label << ": " << counts[int32_t(label)] << " vs " << ideal;
    }
    for (const Example& e : d.split(split)) EXPECT_TRUE(seen.insert(e.source).second) << e.source;
    total += d.split(split).size();
  }
  EXPECT_EQ(total, 161u);  // every example exactly once
  // Derived splits keep file order.
  auto dev = sources(d.split("dev"));
  for (size_t i = 1; i < dev.size(); ++i) {
    auto line = [](const std::string& s) { return std::stoi(s.substr(s.rfind(':') + 1)); };
    EXPECT_LT(line(dev[i - 1]), line(dev[i]));
  }
}

TEST(Datasets, SplitIsDeterministicPerSeed) {
  TempDir dir;
  write_file(dir / "d.csv", labelled_csv({300, 300}));
  DataOptions options;
  Dataset a = load_dataset(dir / "d.csv", options);
  Dataset b = load_dataset(dir / "d.csv", options);
  EXPECT_EQ(sources(a.split("dev")), sources(b.split("dev")));
  EXPECT_EQ(sources(a.split("test")), sources(b.split("test")));
  options.split_seed = 7;
  Dataset c = load_dataset(dir / "d.csv", options);
  EXPECT_EQ(c.split("dev").size(), a.split("dev").size());
  EXPECT_NE(sources(c.split("dev")), sources(a.split("dev")));
}

TEST(Datasets, ResplitFromTrainAndZeroShares) {
  if (!have_tar()) GTEST_SKIP() << "no tar program";
  TempDir dir;
  write_mini_imdb(dir / "aclImdb", 20);
  DataOptions study;
  study.resplit_from_train = true;  // the IMDB study: 80/10/10 of the train set
  Dataset d = load_dataset(dir / "aclImdb", study);
  EXPECT_EQ(d.split("train").size(), 32u);
  EXPECT_EQ(d.split("dev").size(), 4u);
  EXPECT_EQ(d.split("test").size(), 4u);
  for (const Example& e : d.split("test")) EXPECT_NE(e.text.find("train "), std::string::npos);
  EXPECT_EQ(d.derived_splits, (std::vector<std::string>{"dev", "test"}));

  DataOptions no_dev;
  no_dev.split_ratios.dev = 0;
  Dataset raw = load_dataset(dir / "aclImdb", no_dev);
  EXPECT_EQ(raw.split("train").size(), 40u);
  EXPECT_TRUE(raw.derived_splits.empty());
}

TEST(Datasets, MaxExamplesIsAStratifiedSample) {
  TempDir dir;
  write_file(dir / "d.csv", labelled_csv({150, 50}));
  DataOptions options;
  options.split_ratios = {1, 0, 0};
  options.max_examples = 40;
  Dataset d = load_dataset(dir / "d.csv", options);
  EXPECT_EQ(d.split("train").size(), 40u);
  EXPECT_EQ(label_counts(d.split("train")), (std::map<int32_t, size_t>{{0, 30}, {1, 10}}));
  options.split_seed = 3;
  EXPECT_NE(sources(load_dataset(dir / "d.csv", options).split("train")), sources(d.split("train")));
}

TEST(Datasets, StratifiedPartitionRegressionIsOneGroup) {
  std::vector<Example> examples(20);
  for (size_t i = 0; i < examples.size(); ++i) examples[i].target = float(i);
  auto parts = stratified_partition(examples, {0.5, 0.25, 0.25}, true, 1);
  EXPECT_EQ(parts[0].size(), 10u);
  EXPECT_EQ(parts[1].size(), 5u);
  EXPECT_EQ(parts[2].size(), 5u);
}

// ---- real data (skips when ../shared/data is absent) ---------------------------------------------

TEST(RealData, Sst2Counts) {
  fs::path sst2 = fs::path(WW_SHARED_DATA) / "glue" / "SST-2";
  if (!fs::exists(sst2 / "train.tsv")) GTEST_SKIP() << "no SST-2 at " << sst2;
  auto start = std::chrono::steady_clock::now();
  Dataset d = load_dataset(sst2);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(d.name, "sst2");
  EXPECT_EQ(d.split("train").size(), 67349u);
  EXPECT_EQ(d.split("dev").size(), 872u);
  auto counts = label_counts(d.split("dev"));
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0] + counts[1], 872u);
  std::printf("[ info ] SST-2 loaded in %.2f s\n", seconds);
}

TEST(RealData, ImdbArchiveCounts) {
  fs::path archive = fs::path(WW_SHARED_DATA) / "aclImdb.tar.gz";
  if (!fs::exists(archive)) GTEST_SKIP() << "no IMDB archive at " << archive;
  DataOptions options;
  options.clean_html = true;
  auto start = std::chrono::steady_clock::now();
  Dataset d = load_dataset(archive, options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(d.split("test").size(), 25000u);
  EXPECT_EQ(label_counts(d.split("test")), (std::map<int32_t, size_t>{{0, 12500}, {1, 12500}}));
  // Train is 25,000 balanced reviews, of which dev takes 1/9 per label.
  EXPECT_EQ(d.split("train").size() + d.split("dev").size(), 25000u);
  EXPECT_EQ(label_counts(d.split("dev")), (std::map<int32_t, size_t>{{0, 1389}, {1, 1389}}));
  for (const Example& e : d.split("dev")) ASSERT_EQ(e.text.find("<br"), std::string::npos);
  std::printf("[ info ] IMDB read from the .tar.gz in %.2f s\n", seconds);
}

#include "core/csv.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

// All records of `content` as "text@line:column" strings, one vector a record; or the error.
std::vector<std::vector<std::string>> read_all(std::string_view content) {
  CsvReader csv(content, "t.csv");
  std::vector<std::vector<std::string>> records;
  std::vector<CsvField> fields;
  bool got = false;
  while (true) {
    const Status status = csv.next(fields, got);
    if (!status.is_ok()) return {{status.message()}};
    if (!got) return records;
    std::vector<std::string> record;
    for (const CsvField& f : fields) {
      record.push_back(f.text + "@" + std::to_string(f.line) + ":" + std::to_string(f.column));
    }
    records.push_back(record);
  }
}

using Records = std::vector<std::vector<std::string>>;

TEST(Csv, ReadsUnquotedFieldsWithTheirLineAndColumn) {
  EXPECT_EQ(read_all("a,bc,\n,d\n"), (Records{{"a@1:1", "bc@1:3", "@1:6"}, {"@2:1", "d@2:2"}}));
}

TEST(Csv, CrlfEndsRecordsAndBlankLinesAreSkipped) {
  EXPECT_EQ(read_all("\r\na,b\r\n\n\nc\r"), (Records{{"a@2:1", "b@2:3"}, {"c@5:1"}}));
  EXPECT_EQ(read_all(""), Records{});
  EXPECT_EQ(read_all("\n\r\n"), Records{});
}

TEST(Csv, QuotedFieldsHoldCommasQuotesAndLineBreaks) {
  EXPECT_EQ(read_all("\"a,b\",\"say \"\"hi\"\"\",\"x\ny\"\nz\n"),
            (Records{{"a,b@1:1", "say \"hi\"@1:7", "x\ny@1:20"}, {"z@3:1"}}));
  EXPECT_EQ(read_all("\"\",1"), (Records{{"@1:1", "1@1:4"}}));
}

TEST(Csv, ErrorsNameTheFileLineAndColumn) {
  EXPECT_EQ(read_all("a\nb,\"open\nstill open"),
            Records{{"t.csv:2:3: unterminated quoted field (no closing '\"')"}});
  EXPECT_EQ(read_all("\"a\"b"),
            Records{{"t.csv:1:4: expected ',' or the end of the line after a closing quote"}});
  EXPECT_EQ(read_all("x\nab\"c"),
            Records{{"t.csv:2:3: a '\"' inside an unquoted field (quote the whole field)"}});
}

TEST(Csv, ErrorAtAField) {
  CsvReader csv("a,b\n", "f.csv");
  std::vector<CsvField> fields;
  bool got = false;
  ASSERT_TRUE(csv.next(fields, got).is_ok());
  ASSERT_TRUE(got);
  EXPECT_EQ(csv.error(fields[1], "field 'b': expected a number").message(),
            "f.csv:1:3: field 'b': expected a number");
}

}  // namespace
}  // namespace lepton

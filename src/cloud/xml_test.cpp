#include "cloud/xml.h"

#include <gtest/gtest.h>

namespace lepton::cloud::xml {
namespace {

std::string error_of(std::string_view document) {
  auto r = parse(document);
  return r.is_ok() ? "" : r.status().message();
}

TEST(Xml, ReadsElementsAttributesTextAndEntities) {
  auto r = parse(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!-- a comment -->\n"
      "<root xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\" a='1'>\n"
      "  <empty/>\n"
      "  <text>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#65;&#x42;&#x20AC;</text>\n"
      "  <cdata><![CDATA[<not> &markup;]]></cdata>\n"
      "  <!-- between -->\n"
      "  <item><key>k</key></item><item/>\n"
      "</root>\n<!-- trailing comment -->\n");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->name, "root");
  EXPECT_EQ(r->line, 3);
  ASSERT_EQ(r->attributes.size(), 2u);
  EXPECT_EQ(r->attributes[0].second, "http://ec2.amazonaws.com/doc/2016-11-15/");
  EXPECT_EQ(r->attributes[1], (std::pair<std::string, std::string>("a", "1")));
  ASSERT_EQ(r->children.size(), 5u);
  EXPECT_EQ(r->child_text("empty"), "");
  EXPECT_EQ(r->child_text("text"), "a <b> & \"c\" 'd' AB\xE2\x82\xAC");
  EXPECT_EQ(r->child_text("cdata"), "<not> &markup;");
  EXPECT_EQ(r->child("item")->child_text("key"), "k");
  EXPECT_EQ(r->child("missing"), nullptr);
  EXPECT_EQ(r->child_text("missing"), "");
  EXPECT_EQ(r->children[3].line, 8);
}

TEST(Xml, MalformedInputIsAnErrorNamingWhatWasExpected) {
  EXPECT_EQ(error_of(""), "xml:1:1: expected '<' starting the root element, got end of input");
  EXPECT_EQ(error_of("hello"), "xml:1:1: expected '<' starting the root element, got 'hello'");
  EXPECT_EQ(error_of("<a>\n  <b></a>"),
            "xml:2:8: expected </b> closing the element opened on line 2, got </a>");
  EXPECT_EQ(error_of("<a><b>"),
            "xml:1:7: expected </b> closing the element opened on line 1, got end of input");
  EXPECT_EQ(error_of("<a></a><b/>"),
            "xml:1:8: expected end of input after the root element </a>, got '<b/>'");
  EXPECT_EQ(error_of("<!DOCTYPE a [<!ENTITY x \"y\">]><a/>"),
            "xml:1:1: expected no DOCTYPE (not supported), got '<!DOCTYPE a '");
  EXPECT_EQ(error_of("<a>&nbsp;</a>"),
            "xml:1:4: expected one of &lt; &gt; &amp; &quot; &apos; or a character reference, got "
            "'&nbsp;'");
  EXPECT_EQ(error_of("<a>& b</a>"),
            "xml:1:4: expected an entity such as &amp; or &#38; after '&', got '& b</a>'");
  EXPECT_EQ(error_of("<a>&#0;</a>"),
            "xml:1:4: expected a character reference to a character allowed in XML, got '&#0;'");
  EXPECT_EQ(error_of("<a>&#xD800;</a>"),
            "xml:1:4: expected a character reference to a character allowed in XML, got "
            "'&#xD800;'");
  EXPECT_EQ(error_of("<a x='1' x='2'/>"),
            "xml:1:10: expected each attribute once in <a>, got 'x' again");
  EXPECT_EQ(error_of("<a x=1/>"), "xml:1:6: expected a quoted attribute value, got '1/>'");
  EXPECT_EQ(error_of("<a x='<'/>"),
            "xml:1:7: expected no '<' inside an attribute value, got '<'/>'");
  EXPECT_EQ(error_of("<a\x01/>"),
            "xml:1:3: expected '>', '/>' or whitespace in <a>, got byte 0x01");
  EXPECT_EQ(error_of("<a>\x01</a>"), "xml:1:4: expected a character allowed in XML, got byte 0x01");
  EXPECT_EQ(error_of("<a><!-- never closed"),
            "xml:1:21: expected '-->' closing the comment, got end of input");
  EXPECT_EQ(error_of("<a><![CDATA[x</a>"),
            "xml:1:18: expected ']]>' closing the CDATA section, got end of input");
  EXPECT_EQ(error_of("<1a/>"), "xml:1:2: expected an element name after '<', got '1a/>'");
  EXPECT_EQ(error_of("<a></ a>"), "xml:1:6: expected an element name after '</', got ' a>'");
}

TEST(Xml, DeepNestingIsAnErrorNotAStackOverflow) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  EXPECT_EQ(error_of(deep),
            "xml:1:769: expected at most 256 levels of nested elements, got '<a><a><a><a>'");
  std::string ok;
  for (int i = 0; i < kMaxDepth; ++i) ok += "<a>";
  for (int i = 0; i < kMaxDepth; ++i) ok += "</a>";
  EXPECT_EQ(error_of(ok), "");
}

}  // namespace
}  // namespace lepton::cloud::xml

#include "sim/chart.h"

#include <gtest/gtest.h>

namespace lepton::sim {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Chart, OneLinePerSeriesWithEscapedLabels) {
  std::string svg = render_line_chart_svg(
      {{"fgd", {0, 50, 100}, {0, 50, 95}, false}, {"a<b & c", {0, 100}, {10, 20}, true}},
      {.title = "t", .x_label = "x", .y_label = "y", .x_max = 100, .y_max = 100});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2u);  // the dashed series and its legend entry
  EXPECT_NE(svg.find("a&lt;b &amp; c"), std::string::npos);
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace lepton::sim

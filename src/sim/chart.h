// A small SVG line chart writer: one line per series, axes with ticks, a legend. Enough for the
// simulator's "metric vs. arrived workload" pictures, with no dependency beyond the standard
// library; the files open in any browser.
#pragma once

#include <string>
#include <vector>

namespace lepton::sim {

struct ChartSeries {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;
  int color = -1;  // index into the palette; -1: the series' own position
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
};

std::string render_line_chart_svg(const std::vector<ChartSeries>& series,
                                  const ChartOptions& options);

}  // namespace lepton::sim

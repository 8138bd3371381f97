#include "sim/chart.h"

#include <cmath>
#include <cstdio>

namespace lepton::sim {
namespace {

constexpr double kWidth = 860, kHeight = 520;
constexpr double kLeft = 70, kRight = 190, kTop = 50, kBottom = 60;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A "nice" tick step giving about `target` ticks over `range`.
double tick_step(double range, int target) {
  double raw = range / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) return m * mag;
  }
  return 10 * mag;
}

}  // namespace

std::string render_line_chart_svg(const std::vector<ChartSeries>& series, const ChartOptions& o) {
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - o.x_min) / (o.x_max - o.x_min) * plot_w; };
  auto py = [&](double y) {
    double c = std::fmin(std::fmax(y, o.y_min), o.y_max);
    return kTop + plot_h - (c - o.y_min) / (o.y_max - o.y_min) * plot_h;
  };
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" +
       num(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(kWidth / 2 - kRight / 2) +
       "\" y=\"28\" text-anchor=\"middle\" "
       "font-size=\"16\">" +
       escape(o.title) + "</text>\n";
  // Grid and ticks.
  double xs = tick_step(o.x_max - o.x_min, 10), ys = tick_step(o.y_max - o.y_min, 8);
  for (double x = std::ceil(o.x_min / xs) * xs; x <= o.x_max + 1e-9; x += xs) {
    s += "<line x1=\"" + num(px(x)) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(px(x)) +
         "\" y2=\"" + num(kTop + plot_h) + "\" stroke=\"#eee\"/>\n";
    s += "<text x=\"" + num(px(x)) + "\" y=\"" + num(kTop + plot_h + 18) +
         "\" text-anchor=\"middle\">" + num(x) + "</text>\n";
  }
  for (double y = std::ceil(o.y_min / ys) * ys; y <= o.y_max + 1e-9; y += ys) {
    s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(py(y)) + "\" x2=\"" + num(kLeft + plot_w) +
         "\" y2=\"" + num(py(y)) + "\" stroke=\"#eee\"/>\n";
    s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(py(y) + 4) + "\" text-anchor=\"end\">" +
         num(y) + "</text>\n";
  }
  s += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(plot_w) +
       "\" height=\"" + num(plot_h) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  s += "<text x=\"" + num(kLeft + plot_w / 2) + "\" y=\"" + num(kHeight - 15) +
       "\" text-anchor=\"middle\">" + escape(o.x_label) + "</text>\n";
  s += "<text transform=\"translate(18," + num(kTop + plot_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + escape(o.y_label) + "</text>\n";
  // Lines and legend.
  for (size_t i = 0; i < series.size(); ++i) {
    const ChartSeries& c = series[i];
    const size_t slot = c.color >= 0 ? static_cast<size_t>(c.color) : i;
    const char* color = kColors[slot % std::size(kColors)];
    s += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"1.8\"";
    if (c.dashed) s += " stroke-dasharray=\"5,4\"";
    s += " points=\"";
    for (size_t k = 0; k < c.x.size() && k < c.y.size(); ++k) {
      s += num(px(c.x[k])) + "," + num(py(c.y[k])) + " ";
    }
    s += "\"/>\n";
    double ly = kTop + 10 + 20 * static_cast<double>(i);
    double lx = kLeft + plot_w + 15;
    s += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(lx + 24) + "\" y2=\"" +
         num(ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
         (c.dashed ? " stroke-dasharray=\"5,4\"" : "") + "/>\n";
    s += "<text x=\"" + num(lx + 30) + "\" y=\"" + num(ly + 4) + "\">" + escape(c.label) +
         "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace lepton::sim

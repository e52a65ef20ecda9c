// The type sizes and margin the charts share (line_chart.cpp, confusion_matrix.cpp), so that a run's
// plots read as one set. Scales are whole-pixel multiples of stb_easy_font's glyphs (canvas.hpp).
#pragma once

namespace kiln::plot {

inline constexpr int kChartTextScale = 2;  // tick labels, axis labels, legend, cell labels
inline constexpr int kChartTitleScale = 3;
inline constexpr int kChartPad = 12;  // between the canvas's edge, the title, the axes and the labels

}  // namespace kiln::plot

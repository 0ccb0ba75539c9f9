#include "context/source_text.h"

namespace ep {

std::string dedent(std::string_view source) {
    std::string_view margin;
    bool first = true;
    for (size_t pos = 0; pos < source.size();) {
        size_t end = source.find('\n', pos);
        if (end == std::string_view::npos) end = source.size();
        std::string_view line = source.substr(pos, end - pos);
        size_t indent = line.find_first_not_of(" \t");
        if (indent != std::string_view::npos && line[indent] != '\r') {
            std::string_view lead = line.substr(0, indent);
            if (first) {
                margin = lead;
                first = false;
            } else {
                size_t common = 0;
                while (common < margin.size() && common < lead.size() && margin[common] == lead[common]) ++common;
                margin = margin.substr(0, common);
            }
        }
        pos = end + 1;
    }
    if (margin.empty()) return std::string(source);
    std::string out;
    out.reserve(source.size());
    for (size_t pos = 0; pos < source.size();) {
        size_t end = source.find('\n', pos);
        if (end == std::string_view::npos) end = source.size();
        std::string_view line = source.substr(pos, end - pos);
        // Every non-blank line starts with the margin; blank ones become empty.
        line = line.substr(0, margin.size()) == margin ? line.substr(margin.size()) : std::string_view();
        out.append(line);
        if (end < source.size()) out.push_back('\n');
        pos = end + 1;
    }
    return out;
}

}  // namespace ep

// A small, strict XML reader for cloud API responses (the EC2 Query API answers in XML). It reads
// a whole document into a tree of elements and rejects what it does not understand instead of
// guessing; every error is "xml:LINE:COLUMN: expected ..., got ...". It never crashes on input:
// nesting is limited to kMaxDepth elements and everything else is bounded by the input's size.
//
// Supported: an XML declaration and processing instructions (skipped), comments, elements with
// attributes ('...' or "..."), self-closing tags, character data, CDATA sections, the five
// predefined entities and character references (&#NN; and &#xNN;, written out as UTF-8).
// Rejected: a DOCTYPE (so no entity expansion), undeclared entities, mismatched or unclosed tags,
// duplicate attributes, control characters, anything but comments and processing instructions
// after the root element. Namespaces are not interpreted: a name is kept as written ("a:b"), and
// xmlns attributes are ordinary attributes. Encodings other than UTF-8 are not converted and
// UTF-8 is not validated; bytes >= 0x80 pass through unchanged.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lepton::cloud::xml {

inline constexpr int kMaxDepth = 256;

struct Element {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string text;  // all character data directly inside this element, entities decoded
  std::vector<Element> children;
  int line = 0;  // where the start tag begins

  // The first child called `child_name`, or nullptr.
  const Element* child(std::string_view child_name) const;
  // The text of the first child called `child_name`; empty when there is none.
  std::string child_text(std::string_view child_name) const;
};

Result<Element> parse(std::string_view document);

}  // namespace lepton::cloud::xml

# Writes OUTPUT, a C++ source holding the console's files (FILES, from web/) as string literals,
# so the server binary serves them with no files beside it. Run by src/server/CMakeLists.txt:
#   cmake -DOUTPUT=... -DFILES="a|b" -P web/embed.cmake
string(REPLACE "|" ";" FILES "${FILES}")
set(delimiter "lepton_web")
set(entries "")
foreach(file IN LISTS FILES)
  file(READ "${file}" body)
  string(FIND "${body}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${file} contains )${delimiter}\", which ends the string literal")
  endif()
  get_filename_component(name "${file}" NAME)
  get_filename_component(ext "${file}" LAST_EXT)
  if(ext STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  else()
    message(FATAL_ERROR "${file}: no content type for ${ext}")
  endif()
  string(APPEND entries "    {\"/${name}\", \"${type}\",\n     R\"${delimiter}(${body})${delimiter}\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from web/ by web/embed.cmake; do not edit.\n"
     "#include \"server/console_assets.h\"\n\n"
     "namespace lepton::server {\n\n"
     "const std::vector<ConsoleAsset>& console_assets() {\n"
     "  static const std::vector<ConsoleAsset> assets = {\n${entries}  };\n"
     "  return assets;\n}\n\n"
     "}  // namespace lepton::server\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")

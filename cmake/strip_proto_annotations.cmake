# cmake -DIN=<upstream.proto> -DOUT=<stripped.proto> -P strip_proto_annotations.cmake
# Removes gogoproto imports/options/field options and google.api.http rpc options, leaving a
# proto that plain protoc understands. Field numbers, names and types are untouched.
file(READ ${IN} text)
string(REGEX REPLACE "import \"gogoproto/gogo.proto\";" "" text "${text}")
string(REGEX REPLACE "import \"google/api/annotations.proto\";" "" text "${text}")
string(REGEX REPLACE "option \\(gogoproto\\.[a-z_]+\\) = [a-z]+;" "" text "${text}")
# rpc Foo(A) returns (B) { option (google.api.http) = { ... additional_bindings {...} }; }
#   -> rpc Foo(A) returns (B) {}  (one level of nested braces, as upstream uses)
string(REGEX REPLACE "option \\(google\\.api\\.http\\) = {([^{}]|{[^{}]*})*};" "" text "${text}")
# Field options such as [(gogoproto.nullable) = false, (gogoproto.customname) = "ID"].
string(REGEX REPLACE "\\[\\(gogoproto\\.[^]]*\\]" "" text "${text}")
if(text MATCHES "gogoproto|google\\.api")
  message(FATAL_ERROR "unstripped annotation left in ${IN}")
endif()
get_filename_component(dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
file(WRITE ${OUT} "${text}")

# Compiles etcd's gRPC protos at build time from Debian's golang-etcd-server-dev package.
# The upstream files carry gogoproto and google.api (grpc-gateway) annotations that a C++
# build neither has nor needs; strip_proto_annotations.cmake removes them into the build tree.
# Result: target kvsync_etcd_proto (static library) with generated headers under
# ${CMAKE_BINARY_DIR}/proto, included as "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h".
set(ETCD_PROTO_ROOT "/usr/share/gocode/src/go.etcd.io/etcd" CACHE PATH
    "etcd source root (package golang-etcd-server-dev)")
set(ETCD_PROTO_FILES
    mvcc/mvccpb/kv.proto
    auth/authpb/auth.proto
    etcdserver/etcdserverpb/rpc.proto
    etcdserver/api/v3election/v3electionpb/v3election.proto
    etcdserver/api/v3lock/v3lockpb/v3lock.proto)
set(ETCD_GRPC_PROTOS
    etcdserver/etcdserverpb/rpc.proto
    etcdserver/api/v3election/v3electionpb/v3election.proto
    etcdserver/api/v3lock/v3lockpb/v3lock.proto)

find_program(PROTOC protoc REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
set(PROTO_OUT ${CMAKE_BINARY_DIR}/proto)

# protoc resolves imports from the stripped tree, so each compile depends on every stripped file.
set(ETCD_STRIPPED)
foreach(rel ${ETCD_PROTO_FILES})
  list(APPEND ETCD_STRIPPED ${PROTO_OUT}/etcd/${rel})
endforeach()

set(ETCD_PROTO_SRCS)
foreach(rel ${ETCD_PROTO_FILES})
  set(src ${ETCD_PROTO_ROOT}/${rel})
  if(NOT EXISTS ${src})
    message(FATAL_ERROR "etcd proto ${src} not found: install golang-etcd-server-dev (scripts/setup.sh)")
  endif()
  set(stripped ${PROTO_OUT}/etcd/${rel})
  string(REGEX REPLACE "\\.proto$" "" stem ${rel})
  set(outs ${PROTO_OUT}/etcd/${stem}.pb.cc ${PROTO_OUT}/etcd/${stem}.pb.h)
  set(plugin_args)
  if(rel IN_LIST ETCD_GRPC_PROTOS)
    list(APPEND outs ${PROTO_OUT}/etcd/${stem}.grpc.pb.cc ${PROTO_OUT}/etcd/${stem}.grpc.pb.h)
    set(plugin_args --grpc_out=${PROTO_OUT} --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
  endif()
  add_custom_command(
    OUTPUT ${stripped}
    COMMAND ${CMAKE_COMMAND} -DIN=${src} -DOUT=${stripped}
            -P ${PROJECT_SOURCE_DIR}/cmake/strip_proto_annotations.cmake
    DEPENDS ${src} ${PROJECT_SOURCE_DIR}/cmake/strip_proto_annotations.cmake
    COMMENT "Stripping annotations from ${rel}")
  add_custom_command(
    OUTPUT ${outs}
    COMMAND ${PROTOC} -I${PROTO_OUT} --cpp_out=${PROTO_OUT} ${plugin_args} ${stripped}
    DEPENDS ${ETCD_STRIPPED}
    COMMENT "Compiling ${rel}")
  list(APPEND ETCD_PROTO_SRCS ${outs})
endforeach()

add_library(kvsync_etcd_proto STATIC ${ETCD_PROTO_SRCS})
target_include_directories(kvsync_etcd_proto SYSTEM PUBLIC ${PROTO_OUT})
target_link_libraries(kvsync_etcd_proto PUBLIC PkgConfig::GRPCPP PkgConfig::PROTOBUF)

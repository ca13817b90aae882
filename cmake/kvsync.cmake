# Helpers that keep every library and test declared the same way:
#   kvsync_cc_library(NAME <name> SRCS ... DEPS ...)  -> target kvsync_<name>
#   kvsync_cc_test(NAME <name> SRCS ... DEPS ... [LABELS ...]) -> registered with CTest
set(KVSYNC_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
if(KVSYNC_WERROR)
  list(APPEND KVSYNC_WARNINGS -Werror)
endif()
if(KVSYNC_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

function(kvsync_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(kvsync_${ARG_NAME} STATIC ${ARG_SRCS})
  target_include_directories(kvsync_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(kvsync_${ARG_NAME} PRIVATE ${KVSYNC_WARNINGS})
  target_link_libraries(kvsync_${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

function(kvsync_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_compile_options(${ARG_NAME} PRIVATE ${KVSYNC_WARNINGS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    ENVIRONMENT "KVSYNC_BINARY=$<TARGET_FILE:kvsync>")
  # Tests that start servers run alone: on two cores, parallel etcd clusters make them slow.
  if("integration" IN_LIST ARG_LABELS)
    set_tests_properties(${ARG_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

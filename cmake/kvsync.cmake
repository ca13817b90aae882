# Helpers that keep every library and test declared the same way:
#   kvsync_cc_library(NAME <name> SRCS ... DEPS ...)  -> target kvsync_<name>
#   kvsync_cc_test(NAME <name> SRCS ... DEPS ... [LABELS ...]) -> registered with CTest
set(KVSYNC_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
if(KVSYNC_WERROR)
  list(APPEND KVSYNC_WARNINGS -Werror)
endif()
# KVSYNC_SANITIZE: OFF, address (ASan + UBSan; ON means the same) or thread (TSan). Sanitizer
# builds define KVSYNC_SANITIZER_BUILD, which tests use to skip assertions that cannot hold
# under a sanitizer (memory bounds).
string(TOUPPER "${KVSYNC_SANITIZE}" KVSYNC_SANITIZE_UPPER)
if(KVSYNC_SANITIZE_UPPER MATCHES "^(|OFF|0|FALSE|NO|N)$")
  set(KVSYNC_SANITIZER "")
elseif(KVSYNC_SANITIZE_UPPER MATCHES "^(ADDRESS|ON|1|TRUE|YES|Y)$")
  set(KVSYNC_SANITIZER address)
  # UBSan findings fail the run instead of printing and carrying on.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(KVSYNC_SANITIZE_UPPER STREQUAL "THREAD")
  set(KVSYNC_SANITIZER thread)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # Debian's abseil is not built with TSan: tests/sanitizers/tsan_absl_annotations.cc tells TSan
  # what absl::Mutex does. Every executable links it (kvsync_link_sanitizer_support).
  add_library(kvsync_tsan_absl OBJECT ${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan_absl_annotations.cc)
  target_link_libraries(kvsync_tsan_absl PUBLIC absl::synchronization absl::status absl::time
                        ${CMAKE_DL_LIBS})
else()
  message(FATAL_ERROR "KVSYNC_SANITIZE=${KVSYNC_SANITIZE}: expected OFF, address or thread")
endif()
if(KVSYNC_SANITIZER)
  add_compile_definitions(KVSYNC_SANITIZER_BUILD=1)
endif()

# clang checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations at compile time.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  list(APPEND KVSYNC_WARNINGS -Wthread-safety)
endif()

# Links what the sanitizer build needs into an executable (nothing outside the TSan build).
function(kvsync_link_sanitizer_support target)
  if(KVSYNC_SANITIZER STREQUAL "thread")
    target_link_libraries(${target} PRIVATE kvsync_tsan_absl)
  endif()
endfunction()

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
  kvsync_link_sanitizer_support(${ARG_NAME})
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

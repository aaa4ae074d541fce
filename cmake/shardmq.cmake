# Build helpers: one library per module, one gtest binary per module.
include(CMakeParseArguments)

set(SHARDMQ_WARNINGS -Wall -Wextra -Wno-unused-parameter)

# -DSHARDMQ_SANITIZE=address (ASan + UBSan) or thread (TSan).
set(SHARDMQ_SANITIZE "" CACHE STRING "Sanitizer: address or thread")
if(SHARDMQ_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(SHARDMQ_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()
# The broker links jemalloc (Debian libjemalloc-dev) unless a sanitizer is on. glibc's malloc
# grows a worker thread's heap a page at a time, one mprotect call each: with many offline
# sessions queueing messages that was 12% of a worker's time (docs/benchmarks.md). RocksDB also
# recommends jemalloc for its block cache and memtables.
if(SHARDMQ_SANITIZE STREQUAL "")
  set(SHARDMQ_JEMALLOC_DEFAULT ON)
else()
  set(SHARDMQ_JEMALLOC_DEFAULT OFF)
endif()
option(SHARDMQ_JEMALLOC "Link the broker with jemalloc" ${SHARDMQ_JEMALLOC_DEFAULT})
if(SHARDMQ_WERROR)
  list(APPEND SHARDMQ_WARNINGS -Werror)
endif()

# shardmq_add_library(NAME x SRCS a.cc b.cc DEPS shardmq::common PRIVATE_DEPS RocksDB::rocksdb)
# creates target shardmq_x with alias shardmq::x.
function(shardmq_add_library)
  cmake_parse_arguments(L "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(shardmq_${L_NAME} STATIC ${L_SRCS})
  add_library(shardmq::${L_NAME} ALIAS shardmq_${L_NAME})
  target_include_directories(shardmq_${L_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(shardmq_${L_NAME} PRIVATE ${SHARDMQ_WARNINGS})
  target_link_libraries(shardmq_${L_NAME} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
endfunction()

# shardmq_add_test(NAME codec_test SRCS .. DEPS .. LABELS unit)
function(shardmq_add_test)
  cmake_parse_arguments(T "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SRCS})
  target_compile_options(${T_NAME} PRIVATE ${SHARDMQ_WARNINGS})
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  gtest_discover_tests(${T_NAME} DISCOVERY_MODE PRE_TEST PROPERTIES LABELS "${T_LABELS}")
endfunction()

# The fuzz targets (STARPIPE_FUZZ=ON, clang): libFuzzer with AddressSanitizer
# and UndefinedBehaviorSanitizer; the whole library is built with coverage
# (-fsanitize=fuzzer-no-link, see CMakeLists.txt). scripts/fuzz.sh builds and
# runs them on their seed corpora in tests/fuzz/<target>/.
function(sp_add_fuzz name)
  add_executable(${name} tests/fuzz/${name}.c ${ARGN})
  target_link_libraries(${name} PRIVATE starpipe ${MATH_LIB})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tools)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()

sp_add_fuzz(fuzz_safetensors)
sp_add_fuzz(fuzz_idx)
sp_add_fuzz(fuzz_args tools/train_args.c tools/train_usage.c tools/cli.c tools/data.c tools/model.c
            tools/run_meta.c)
# --help's exit() returns to the fuzzer instead (fuzz_args.c)
target_compile_definitions(fuzz_args PRIVATE exit=sp_fuzz_exit)

# One executable per concern; every test runs with its own StarPU home so
# perf-model calibration files stay inside the build tree.
set(SP_TEST_ENV
  "STARPU_HOME=${CMAKE_BINARY_DIR}/starpu-home"
  "STARPU_SILENT=1"
  "OPENBLAS_NUM_THREADS=1")

function(sp_add_test name)
  add_executable(${name} tests/${name}.c)
  # tests may use the codelets' private header, which includes StarPU's
  target_link_libraries(${name} PRIVATE starpipe PkgConfig::STARPU ${MATH_LIB})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/codelets ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600
                       SKIP_RETURN_CODE 77)
endfunction()

sp_add_test(test_gradcheck)
target_link_libraries(test_gradcheck PRIVATE PkgConfig::OPENBLAS)
sp_add_test(test_equivalence)
sp_add_test(test_team)
target_link_libraries(test_team PRIVATE Threads::Threads)
sp_add_test(test_partition)
sp_add_test(test_idx)
target_link_libraries(test_idx PRIVATE ZLIB::ZLIB)
sp_add_test(test_checkpoint)
sp_add_test(test_bad_input)
sp_add_test(test_few_microbatches)
sp_add_test(test_schedules)
sp_add_test(test_gpt)
sp_add_test(test_cnn)
sp_add_test(test_cuda)
if(SP_CUDA)
  target_compile_definitions(test_cuda PRIVATE SP_HAVE_CUDA=1)
endif()

add_test(NAME cli_errors COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_errors.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_errors PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 300)

add_test(NAME cli_data COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_data.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_data PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

add_test(NAME cli_trace COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_trace.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_trace PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

add_test(NAME cli_gpt COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_gpt.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_gpt PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

add_test(NAME mpi_run COMMAND ${CMAKE_SOURCE_DIR}/tests/mpi_run.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(mpi_run PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 1200 SKIP_RETURN_CODE 77)

# the installed package, used the way a program outside this tree uses it
add_test(NAME install COMMAND ${CMAKE_SOURCE_DIR}/tests/install.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
                              ${CMAKE_C_COMPILER} ${STARPIPE_SANITIZE})
set_tests_properties(install PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

# hostile and careless use (issue 11): crafted checkpoints, odd paths, killed saves, limits
add_test(NAME cli_hostile COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_hostile.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_hostile PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

# every JSON the command prints parses with a strict parser
add_test(NAME cli_json COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_json.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_json PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

# the residual CNN from the command line (issue 14)
add_test(NAME cli_cnn COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_cnn.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_cnn PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

# stages balanced by measured cost (issue 13): calibration, FLOPs mislead, plan
sp_add_test(test_balance)
add_test(NAME cli_plan COMMAND ${CMAKE_SOURCE_DIR}/tests/cli_plan.sh $<TARGET_FILE:starpipe_cli>)
set_tests_properties(cli_plan PROPERTIES ENVIRONMENT "${SP_TEST_ENV}" TIMEOUT 600)

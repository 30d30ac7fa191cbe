# starpipeConfig.cmake — find_package(starpipe) for an installed starpipe:
#   find_package(starpipe 0.1 REQUIRED)
#   target_link_libraries(prog PRIVATE starpipe::starpipe)
# starpipe::starpipe is a shared library that finds its own dependencies
# (StarPU, OpenBLAS, ...) through its RUNPATH; it brings only its headers.
include("${CMAKE_CURRENT_LIST_DIR}/starpipeTargets.cmake")

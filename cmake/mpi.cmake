# memsgd-mpi (issue: the same methods across Open MPI ranks), built when MPI is found
# (Debian 12: libopenmpi-dev). MEMSGD_MPI=OFF skips it.
option(MEMSGD_MPI "Build memsgd-mpi when an MPI implementation is found" ON)
set(MEMSGD_HAVE_MPI OFF)
if(MEMSGD_MPI)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(MEMSGD_HAVE_MPI ON)
    file(GLOB MEMSGD_MPI_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/mpi/*.cpp)
    add_executable(memsgd-mpi ${MEMSGD_MPI_SOURCES} ${PROJECT_SOURCE_DIR}/src/cli/train_args.cpp
                   ${PROJECT_SOURCE_DIR}/src/cli/data_options.cpp
                   ${PROJECT_SOURCE_DIR}/src/cli/train_output.cpp)
    target_include_directories(memsgd-mpi PRIVATE ${PROJECT_SOURCE_DIR}/src/cli ${PROJECT_SOURCE_DIR}/src/mpi)
    target_link_libraries(memsgd-mpi PRIVATE memsgd::core Boost::program_options MPI::MPI_CXX)
    memsgd_set_flags(memsgd-mpi)
    find_program(MEMSGD_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
  else()
    message(STATUS "MPI not found: memsgd-mpi is not built (apt-get install libopenmpi-dev openmpi-bin)")
  endif()
endif()

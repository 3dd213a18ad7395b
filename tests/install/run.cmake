# CTest install_consumer: installs the build tree BUILD into WORK/prefix, builds the consumer
# project (tests/install/consumer) against it with find_package(memsgd), and runs it on DATA.
# cmake -DBUILD=... -DSRC=... -DWORK=... -DDATA=... -P run.cmake
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
foreach(f bin/memsgd include/memsgd/train.hpp lib/cmake/memsgd/memsgdConfig.cmake
          lib/cmake/memsgd/memsgdConfigVersion.cmake lib/cmake/memsgd/memsgdTargets.cmake)
  if(NOT EXISTS ${WORK}/prefix/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/install/consumer -B ${WORK}/consumer
                        -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed:\n${out}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/consumer
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc)
  message(FATAL_ERROR "building the consumer failed:\n${out}")
endif()
execute_process(COMMAND ${WORK}/consumer/consumer ${DATA} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message(STATUS "consumer: ${out}${err}")
if(rc)
  message(FATAL_ERROR "the consumer failed (${rc})")
endif()

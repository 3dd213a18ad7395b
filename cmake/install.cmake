# `cmake --install BUILD [--prefix P]`: the memsgd program, the library memsgd::core (static),
# its public headers, and a CMake package (memsgdConfig.cmake, version file, exported targets)
# so that another project can `find_package(memsgd REQUIRED)` and link `memsgd::core`.
# Tested by tests/install/run.cmake (CTest: install_consumer).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(memsgd_core PROPERTIES EXPORT_NAME core)
install(TARGETS memsgd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS memsgd_core EXPORT memsgdTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/memsgd DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(MEMSGD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/memsgd)
install(EXPORT memsgdTargets NAMESPACE memsgd:: DESTINATION ${MEMSGD_CMAKE_DIR})
configure_package_config_file(cmake/memsgdConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/memsgdConfig.cmake
                              INSTALL_DESTINATION ${MEMSGD_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/memsgdConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/memsgdConfig.cmake ${PROJECT_BINARY_DIR}/memsgdConfigVersion.cmake
        DESTINATION ${MEMSGD_CMAKE_DIR})

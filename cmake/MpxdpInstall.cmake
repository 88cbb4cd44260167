# cmake --install build --prefix P: libmpxdp.so (and .a), include/mpxdp/*.h, the CMake
# package (find_package(mpxdp) -> mpxdp::mpxdp), mpxdp.pc and the mpxdp CLI.
include(CMakePackageConfigHelpers)

set(MPXDP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mpxdp)
set(MPXDP_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS mpxdp_library mpxdp_library_static EXPORT mpxdpTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library NAMELINK_COMPONENT development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/mpxdp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT development FILES_MATCHING PATTERN "*.h")
install(EXPORT mpxdpTargets NAMESPACE mpxdp:: DESTINATION ${MPXDP_CMAKE_DIR} COMPONENT development)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/mpxdpConfig.cmake.in
  ${PROJECT_BINARY_DIR}/mpxdpConfig.cmake INSTALL_DESTINATION ${MPXDP_CMAKE_DIR})
# 0.x: a new minor version may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mpxdpConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mpxdpConfig.cmake ${PROJECT_BINARY_DIR}/mpxdpConfigVersion.cmake
  DESTINATION ${MPXDP_CMAKE_DIR} COMPONENT development)

# mpxdp.pc finds its prefix from its own place (${pcfiledir}), so the tree
# can be installed anywhere (cmake --install --prefix) or moved.
file(RELATIVE_PATH MPXDP_PC_TO_PREFIX /prefix/${MPXDP_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" MPXDP_PC_TO_PREFIX "${MPXDP_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/mpxdp.pc.in ${PROJECT_BINARY_DIR}/mpxdp.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/mpxdp.pc DESTINATION ${MPXDP_PKGCONFIG_DIR} COMPONENT development)

install(TARGETS mpxdp RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)

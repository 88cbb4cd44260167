# Man pages made from the --help texts (help2man), the examples, and the
# Debian package: `cpack -G DEB` in the build directory gives
# mpxdp_VERSION_ARCH.deb with the CLI, libmpxdp, its headers, the CMake and
# pkg-config files, a man page per subcommand and the tunnel examples
# (systemd unit, config files).
option(MPXDP_MAN_PAGES "Generate the man pages with help2man" ON)

# Every subcommand of `mpxdp --help` but help (scripts/test.sh checks that this list is complete).
set(MPXDP_MAN_COMMANDS testbed send recv tun genkey demo)

find_program(HELP2MAN_EXECUTABLE help2man)
if(MPXDP_MAN_PAGES AND HELP2MAN_EXECUTABLE)
  set(MPXDP_MAN_DIR ${PROJECT_BINARY_DIR}/man)
  set(MPXDP_MAN_SCRIPT ${PROJECT_SOURCE_DIR}/cmake/mpxdp-man.sh)
  set(MPXDP_MAN_PAGE_FILES ${MPXDP_MAN_DIR}/mpxdp.1)
  add_custom_command(OUTPUT ${MPXDP_MAN_DIR}/mpxdp.1
    COMMAND sh ${MPXDP_MAN_SCRIPT} $<TARGET_FILE:mpxdp> ${PROJECT_VERSION} ${MPXDP_MAN_DIR}
    DEPENDS mpxdp ${MPXDP_MAN_SCRIPT} VERBATIM)
  foreach(command ${MPXDP_MAN_COMMANDS})
    add_custom_command(OUTPUT ${MPXDP_MAN_DIR}/mpxdp-${command}.1
      COMMAND sh ${MPXDP_MAN_SCRIPT} $<TARGET_FILE:mpxdp> ${PROJECT_VERSION} ${MPXDP_MAN_DIR} ${command}
      DEPENDS mpxdp ${MPXDP_MAN_SCRIPT} VERBATIM)
    list(APPEND MPXDP_MAN_PAGE_FILES ${MPXDP_MAN_DIR}/mpxdp-${command}.1)
  endforeach()
  add_custom_target(man ALL DEPENDS ${MPXDP_MAN_PAGE_FILES})
  install(FILES ${MPXDP_MAN_PAGE_FILES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT cli)
elseif(MPXDP_MAN_PAGES)
  message(STATUS "help2man not found: no man pages (scripts/install-deps.sh installs it)")
endif()

install(FILES ${PROJECT_SOURCE_DIR}/examples/tun/mpxdp-tun@.service ${PROJECT_SOURCE_DIR}/examples/tun/mpx0.toml
  ${PROJECT_SOURCE_DIR}/examples/tun/hub.toml
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT cli)
file(GLOB MPXDP_DOCS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${MPXDP_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT cli)

set(CPACK_PACKAGE_NAME mpxdp)
set(CPACK_PACKAGE_VENDOR "mpxdp")
set(CPACK_PACKAGE_CONTACT "mpxdp developers <mpxdp@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "bond several network links into one connection, data path on AF_XDP")
set(CPACK_PACKAGE_DESCRIPTION
  "mpxdp sprays one flow over several links between two Linux hosts, AF_XDP sockets on each link, and hands \
the receiver an in-order stream. It carries its own test pattern (send/recv, like iperf3), files, or IP packets \
through a TUN interface (mpxdp tun) with authenticated encryption. Includes libmpxdp with its headers.")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# The libraries it links (libbpf, libxdp, libssl, fmt...) from dpkg-shlibdeps; the test bed and tun need these tools.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iproute2")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ethtool, iperf3")
set(CPACK_STRIP_FILES ON)
# One package with the CLI, the library and the development files.
set(CPACK_COMPONENTS_ALL cli library development)
set(CPACK_DEB_COMPONENT_INSTALL OFF)
set(CPACK_SET_DESTDIR OFF)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)

# Run at install time (install(SCRIPT …) through tagmem_install_configured): configure one
# file with the paths of the prefix being installed to, which `cmake --install --prefix P`
# may change after configuration, and install it. Gets TAGMEM_IN, TAGMEM_OUT (a build-tree
# path), TAGMEM_DEST (relative to the prefix, or SYSCONF/…), TAGMEM_LIBDIR, TAGMEM_INCLUDEDIR.
set(TAGMEM_PREFIX "${CMAKE_INSTALL_PREFIX}")
# configuration lives in /etc for a system install (prefix /usr), else under the prefix
if(TAGMEM_PREFIX STREQUAL "/usr")
  set(TAGMEM_SYSCONFDIR "/etc")
else()
  set(TAGMEM_SYSCONFDIR "${TAGMEM_PREFIX}/etc")
endif()
set(TAGMEM_SBINDIR "${TAGMEM_PREFIX}/sbin")
set(TAGMEM_BINDIR "${TAGMEM_PREFIX}/bin")
set(TAGMEM_FULL_LIBDIR "${TAGMEM_PREFIX}/${TAGMEM_LIBDIR}")
set(TAGMEM_FULL_INCLUDEDIR "${TAGMEM_PREFIX}/${TAGMEM_INCLUDEDIR}")
string(REGEX REPLACE "^SYSCONF" "${TAGMEM_SYSCONFDIR}" dest "${TAGMEM_DEST}")
if(NOT IS_ABSOLUTE "${dest}")
  set(dest "${TAGMEM_PREFIX}/${dest}")
endif()
get_filename_component(name "${TAGMEM_OUT}" NAME)
if(TAGMEM_KEEP AND EXISTS "$ENV{DESTDIR}${dest}/${name}")
  message(STATUS "Kept: $ENV{DESTDIR}${dest}/${name} (an administrator's file)")
  return()
endif()
configure_file("${TAGMEM_IN}" "${TAGMEM_OUT}" @ONLY)
file(INSTALL "${TAGMEM_OUT}" DESTINATION "${dest}" USE_SOURCE_PERMISSIONS)

# Debian packages with CPack's DEB generator (cmake/package-deb.sh builds them), split the way
# Debian splits a library and its programs:
#   libtagmem1     the shared library (component lib)
#   libtagmem-dev  its header, .so link and libtagmem.pc (component dev)
#   tagmem         brokerd, tagmem-fmd, tagmem-clusterd, tagmem-guestd, the tagmem CLI,
#                  tagmem-id and the udev rules, the systemd units, /etc/default/tagmem-brokerd,
#                  man pages and bash completion (component tagmem: everything else)
# The maintainer scripts (cmake/deb/) reload udev, enable and start the socket where systemd
# runs, stop it on removal, and on purge remove what brokerd kept (/var/lib/tagmem).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tagmem)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "tagmem")
set(CPACK_PACKAGE_CONTACT "tagmem developers <tagmem-devel@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "tagged CXL dynamic capacity for hosts, VMs and containers")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://localhost/tagmem")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL tagmem lib dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from the ELF files' needs (dpkg-shlibdeps); libtagmem.so.1 is found in the build tree
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/libtagmem)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libtagmem1)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIB_DESCRIPTION "tagmem client library
 libtagmem talks to brokerd, the tagmem daemon, over its Unix socket: look up, list, show,
 claim and release tagged capacity, and follow its events.")
set(CPACK_DEBIAN_LIB_PACKAGE_GENERATE_SHLIBS ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libtagmem-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjson-c-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION "tagmem client library: development files
 The header, the shared object link and libtagmem.pc for programs that use libtagmem.")

set(CPACK_DEBIAN_TAGMEM_PACKAGE_NAME tagmem)
set(CPACK_DEBIAN_TAGMEM_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_TAGMEM_PACKAGE_RECOMMENDS "udev")
set(CPACK_DEBIAN_TAGMEM_DESCRIPTION "tagged CXL dynamic capacity for hosts, VMs and containers
 brokerd maps the tags a CXL fabric manager gives capacity to (UUIDs, the same on every
 host) to this host's devdax devices, hands them to QEMU and to containers (CDI), and keeps
 fake-DAX images durable (flush) and within their memory budgets (eviction). The tagmem
 CLI, the udev rules for /dev/disk/by-tag, the guest agent and a simulated fabric manager
 come with it.")
set(CPACK_DEBIAN_TAGMEM_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/cmake/deb/postinst;${PROJECT_SOURCE_DIR}/cmake/deb/prerm;${PROJECT_SOURCE_DIR}/cmake/deb/postrm;${PROJECT_SOURCE_DIR}/cmake/deb/conffiles")
set(CPACK_DEBIAN_TAGMEM_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
cpack_add_component(lib DISPLAY_NAME "libtagmem1")
cpack_add_component(dev DISPLAY_NAME "libtagmem-dev" DEPENDS lib)
cpack_add_component(tagmem DISPLAY_NAME "tagmem" DEPENDS lib)

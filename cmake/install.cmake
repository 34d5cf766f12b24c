# `cmake --install build --prefix P` (and `cpack -G DEB`): everything bitnetc needs, laid
# out as the build tree is (runtime_folder.h), so P can be moved or copied whole.
#   bin/bitnetc
#   lib/bitnetc/                  the runtime outputs link with, per triple (and, with
#                                 --component sanitizers, the asan/tsan runtimes)
#   lib/libbitnetc_tokenizer.so
#   lib/cmake/bitnetc/            find_package(bitnetc) and bitnetc_add_model()
#   lib/pkgconfig/bitnet.pc       pkg-config --cflags bitnet
#   lib/python3/dist-packages/bitnet_py
#   include/bitnet.h, bitnet_c.h, bitnetc_tokenizer.h
#   share/doc/bitnetc/            README.md and every command's --help text
include(CMakePackageConfigHelpers)
install(TARGETS bitnetc RUNTIME DESTINATION bin)
install(DIRECTORY ${CMAKE_BINARY_DIR}/lib/bitnetc/ DESTINATION lib/bitnetc PATTERN asan EXCLUDE PATTERN tsan EXCLUDE)
# The sanitized runtimes (bitnetc --runtime=asan|tsan, for checking a program that uses an
# output) are a development aid of 80 MB whose UBSan type names hold source paths: only
# with `cmake --install build --component sanitizers`.
if(BITNETC_HAVE_SANITIZED_RUNTIMES)
  install(DIRECTORY ${CMAKE_BINARY_DIR}/lib/bitnetc/x86_64-linux-gnu/asan ${CMAKE_BINARY_DIR}/lib/bitnetc/x86_64-linux-gnu/tsan
          DESTINATION lib/bitnetc/x86_64-linux-gnu COMPONENT sanitizers EXCLUDE_FROM_ALL)
endif()
install(TARGETS bitnetc_tokenizer LIBRARY DESTINATION lib)
install(FILES ${PROJECT_SOURCE_DIR}/runtime_stub/api/bitnet.h ${PROJECT_SOURCE_DIR}/runtime_stub/api/bitnet_c.h
              ${PROJECT_SOURCE_DIR}/tools/libbitnetc_tokenizer/bitnetc_tokenizer.h
        DESTINATION include)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/bitnetcConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/cmake/bitnetcConfig.cmake INSTALL_DESTINATION lib/cmake/bitnetc)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/bitnetcConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/bitnetcConfig.cmake ${CMAKE_BINARY_DIR}/cmake/bitnetcConfigVersion.cmake
        DESTINATION lib/cmake/bitnetc)
configure_file(${PROJECT_SOURCE_DIR}/cmake/bitnet.pc.in ${CMAKE_BINARY_DIR}/cmake/bitnet.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/bitnet.pc DESTINATION lib/pkgconfig)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/bitnet_py DESTINATION lib/python3/dist-packages
        PATTERN __pycache__ EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/bitnetc)
# The help texts, from the bitnetc being installed (man-style reference beside README).
install(CODE "
  set(doc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/share/doc/bitnetc\")
  file(MAKE_DIRECTORY \"\${doc}\")
  foreach(cmd \"\" inspect run convert compile bench verify targets synth)
    if(cmd STREQUAL \"\")
      set(name bitnetc)
    else()
      set(name bitnetc-\${cmd})
    endif()
    execute_process(COMMAND \"$<TARGET_FILE:bitnetc>\" \${cmd} --help OUTPUT_FILE \"\${doc}/\${name}.txt\"
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR \"bitnetc \${cmd} --help failed (\${rc})\")
    endif()
  endforeach()
")

# cpack -G DEB: a Debian package of the install above, at /usr. Its dependencies are what
# bitnetc loads (Halide, LLVM, SentencePiece) and runs (the C++ driver that links
# outputs, llc for VNNI kernels; the aarch64 cross compiler and the wasm32 libraries where
# it was built with them); node runs WebAssembly outputs.
set(CPACK_PACKAGE_NAME bitnetc)
set(CPACK_PACKAGE_VENDOR "bitnetc")
set(CPACK_PACKAGE_CONTACT "bitnetc developers <bitnetc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ahead-of-time compiler for ternary (BitNet b1.58) language models")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(bitnetc_deb_depends "libc6, libstdc++6, libhalide14-0, libllvm14, libsentencepiece0, clang-14, llvm-14, lld-14")
if(BITNETC_AARCH64_CXX)
  string(APPEND bitnetc_deb_depends ", g++-aarch64-linux-gnu")
endif()
if(BITNETC_HAVE_WASM)  # wasm32 outputs link against these (codegen/link.cpp)
  string(APPEND bitnetc_deb_depends ", wasi-libc, libc++-14-dev-wasm32, libc++abi-14-dev-wasm32, "
                                    "libclang-rt-14-dev-wasm32")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${bitnetc_deb_depends}")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "qemu-user, python3, nodejs")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nvidia-cuda-toolkit")
set(CPACK_GENERATOR DEB)
include(CPack)

# Version header, `cmake --install` rules, the CMake package (find_package(gill) -> gill::gill) and gill.pc.
# Included from the top-level CMakeLists.txt right after the gill_core target is defined.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

configure_file(${PROJECT_SOURCE_DIR}/cmake/version.h.in ${PROJECT_BINARY_DIR}/generated/include/gill/version.h @ONLY)
target_include_directories(gill_core PUBLIC $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated/include>)

# Public headers: include/gill/*.h plus the generated version.h.
file(GLOB GILL_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/gill/*.h)
install(FILES ${GILL_PUBLIC_HEADERS} ${PROJECT_BINARY_DIR}/generated/include/gill/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/gill)

set_target_properties(gill_core PROPERTIES EXPORT_NAME gill)
install(TARGETS gill_core EXPORT gillTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS gill_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The SentencePiece shim, found at run time as <exe>/../lib/gill/libgill_spm.so (src/tokenizer/sp_tokenizer.cpp).
install(TARGETS gill_spm LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/gill)

set(GILL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/gill)
install(EXPORT gillTargets NAMESPACE gill:: DESTINATION ${GILL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/gillConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/generated/gillConfig.cmake INSTALL_DESTINATION ${GILL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/generated/gillConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/generated/gillConfig.cmake ${PROJECT_BINARY_DIR}/generated/gillConfigVersion.cmake
        DESTINATION ${GILL_CMAKE_DIR})

# pkg-config: libtorch ships no .pc file, so gill.pc lists the Torch libraries this build found (absolute paths).
set(GILL_PC_TORCH_LIBS "")
set(_gill_torch_libs ${TORCH_LIBRARIES})
foreach(t torch_cpu c10)
  if(TARGET ${t})
    list(APPEND _gill_torch_libs ${t})
  endif()
endforeach()
list(REMOVE_DUPLICATES _gill_torch_libs)
foreach(lib ${_gill_torch_libs})
  if(TARGET ${lib})
    get_target_property(_type ${lib} TYPE)
    if(NOT _type STREQUAL "INTERFACE_LIBRARY")
      string(APPEND GILL_PC_TORCH_LIBS " $<TARGET_LINKER_FILE:${lib}>")
    endif()
  elseif(lib MATCHES "^-")
    string(APPEND GILL_PC_TORCH_LIBS " ${lib}")
  elseif(EXISTS "${lib}")
    string(APPEND GILL_PC_TORCH_LIBS " ${lib}")
  endif()
endforeach()
if(STB_LIB)
  string(APPEND GILL_PC_TORCH_LIBS " ${STB_LIB}")
endif()
if(GILL_OPENMP)  # libgill.a calls GNU OpenMP (its parallel loops)
  string(APPEND GILL_PC_TORCH_LIBS " -fopenmp")
endif()
# A sanitizer build's libgill.a calls the sanitizer runtimes: its consumers must link with the same flags.
if(GILL_SANITIZE)
  target_link_options(gill_core INTERFACE $<INSTALL_INTERFACE:-fsanitize=address,undefined>)
  string(APPEND GILL_PC_TORCH_LIBS " -fsanitize=address,undefined")
endif()
set(GILL_PC_REQUIRES "nlohmann_json spdlog libpcre2-8 icu-uc")
# prefix relative to the .pc file, so `cmake --install --prefix ANY` gives a correct file.
file(RELATIVE_PATH GILL_PC_PREFIX_REL /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" GILL_PC_PREFIX_REL "${GILL_PC_PREFIX_REL}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/gill.pc.in ${PROJECT_BINARY_DIR}/generated/gill.pc.in @ONLY)
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/generated/gill.pc INPUT ${PROJECT_BINARY_DIR}/generated/gill.pc.in)
install(FILES ${PROJECT_BINARY_DIR}/generated/gill.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

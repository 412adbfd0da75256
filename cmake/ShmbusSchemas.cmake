# shmbus — FlatBuffers schemas, compiled at build time.
#
# Included from the top-level CMakeLists.txt after find_package(FlatBuffers)
# and include(GNUInstallDirs). For every schemas/<name>.fbs the build runs
# flatc (when the .fbs, a file it includes, or flatc itself changes) and makes
#
#   ${CMAKE_BINARY_DIR}/generated/include/shmbus/msg/<name>_generated.h   C++ API
#   ${CMAKE_BINARY_DIR}/generated/bfbs/<name>.bfbs                        binary schema
#
# plus, for all of them,
#
#   ${CMAKE_BINARY_DIR}/generated/include/shmbus/messages.hpp   umbrella header
#   ${CMAKE_BINARY_DIR}/generated/src/shmbus_embedded_schemas.cpp
#       every .bfbs as a byte array, the table SchemaRegistry preloads
#       (written by cmake/EmbedBfbs.cmake)
#
# It sets, in the including scope:
#   SHMBUS_GENERATED_INCLUDE_DIR  add as a SYSTEM include directory
#   SHMBUS_SCHEMA_SOURCES         generated sources to compile into the library
#   SHMBUS_SCHEMA_FILES           the .fbs files
#   SHMBUS_BFBS_FILES             the .bfbs files the build writes
# and creates the target shmbus_generate, which produces all of the above.
#
# SHMBUS_SCHEMA_DIR may be set before the include to compile another schema
# directory (the default is the schemas/ directory next to this cmake/ one).
# Generated code is never committed: it lives in the build tree only.

include_guard(GLOBAL)

# Build-time flags, shared with anyone who runs flatc on these schemas by hand.
#   --scoped-enums           enum class, no unscoped names leaking into namespaces
#   --gen-name-strings       T::GetFullyQualifiedName(), used by shmbus::type_of<T>()
#   --gen-mutable            mutate_<field>() accessors: MessageTemplate<T> sets a
#                            message's scalars in place in the claimed slot
#   --require-explicit-ids   every table field carries (id: N): the wire contract
#   --warnings-as-errors     a questionable schema fails the build
#   --include-prefix         generated headers include each other as <shmbus/msg/...>,
#                            which works in the build tree and once installed
#   --bfbs-comments          doc comments go into the .bfbs for the tools to show
#                            (the structural schema hash ignores them)
#   --bfbs-filenames         each type records the .fbs that declares it, relative to
#                            the schema directory, so the registry can prefer the
#                            declaring file; no absolute paths end up in the library
set(SHMBUS_FLATC_COMMON_FLAGS --require-explicit-ids --warnings-as-errors)
set(SHMBUS_FLATC_CPP_FLAGS --cpp --scoped-enums --gen-name-strings --gen-mutable
                           --include-prefix shmbus/msg)
set(SHMBUS_FLATC_BFBS_FLAGS --binary --schema --bfbs-comments)

# The .fbs files `fbs` includes, directly or not, resolved in `dir`.
function(_shmbus_fbs_includes fbs dir out_var)
  set(pending "${fbs}")
  set(seen "")
  while(pending)
    list(POP_FRONT pending current)
    file(STRINGS "${current}" lines REGEX "^[ \t]*include[ \t]+\"[^\"]+\"[ \t]*;")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*include[ \t]+\"([^\"]+)\".*$" "\\1" name "${line}")
      set(path "${dir}/${name}")
      if(NOT EXISTS "${path}")
        message(FATAL_ERROR "${current} includes \"${name}\", which is not in ${dir}. "
                            "Schemas include each other by file name relative to the schema directory.")
      endif()
      if(NOT path IN_LIST seen)
        list(APPEND seen "${path}")
        list(APPEND pending "${path}")
      endif()
    endforeach()
  endwhile()
  set(${out_var} "${seen}" PARENT_SCOPE)
endfunction()

function(shmbus_generate_schemas)
  if(NOT DEFINED SHMBUS_SCHEMA_DIR)
    set(SHMBUS_SCHEMA_DIR "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../schemas")
  endif()
  cmake_path(ABSOLUTE_PATH SHMBUS_SCHEMA_DIR NORMALIZE OUTPUT_VARIABLE schema_dir)
  string(REGEX REPLACE "/$" "" schema_dir "${schema_dir}")

  if(TARGET flatbuffers::flatc)
    set(flatc flatbuffers::flatc)
    set(flatc_file "$<TARGET_FILE:flatbuffers::flatc>")
  else()
    find_program(SHMBUS_FLATC_EXECUTABLE flatc REQUIRED)
    set(flatc "${SHMBUS_FLATC_EXECUTABLE}")
    set(flatc_file "${SHMBUS_FLATC_EXECUTABLE}")
  endif()

  set(gen_dir "${CMAKE_BINARY_DIR}/generated")
  set(include_dir "${gen_dir}/include")
  set(header_dir "${include_dir}/shmbus/msg")
  set(bfbs_dir "${gen_dir}/bfbs")
  set(src_dir "${gen_dir}/src")
  file(MAKE_DIRECTORY "${header_dir}" "${bfbs_dir}" "${src_dir}")

  # CONFIGURE_DEPENDS: adding or removing a .fbs re-runs the configure step.
  file(GLOB schema_files CONFIGURE_DEPENDS "${schema_dir}/*.fbs")
  list(SORT schema_files)
  if(NOT schema_files)
    message(FATAL_ERROR "No .fbs files in ${schema_dir}: shmbus needs its message schemas.")
  endif()
  # Editing a .fbs re-runs configure too, so the include scan below stays right.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${schema_files})

  set(headers "")
  set(bfbs_files "")
  set(umbrella_includes "")
  foreach(fbs IN LISTS schema_files)
    cmake_path(GET fbs STEM name)
    set(header "${header_dir}/${name}_generated.h")
    set(bfbs "${bfbs_dir}/${name}.bfbs")
    _shmbus_fbs_includes("${fbs}" "${schema_dir}" includes)
    add_custom_command(
      OUTPUT "${header}" "${bfbs}"
      COMMAND ${flatc} ${SHMBUS_FLATC_CPP_FLAGS} ${SHMBUS_FLATC_COMMON_FLAGS}
              -I "${schema_dir}" -o "${header_dir}" "${fbs}"
      COMMAND ${flatc} ${SHMBUS_FLATC_BFBS_FLAGS} ${SHMBUS_FLATC_COMMON_FLAGS}
              --bfbs-filenames "${schema_dir}" -I "${schema_dir}" -o "${bfbs_dir}" "${fbs}"
      DEPENDS "${fbs}" ${includes} "${flatc_file}"
      COMMENT "flatc ${name}.fbs -> shmbus/msg/${name}_generated.h, ${name}.bfbs"
      VERBATIM)
    list(APPEND headers "${header}")
    list(APPEND bfbs_files "${bfbs}")
    string(APPEND umbrella_includes "#include \"shmbus/msg/${name}_generated.h\"\n")
  endforeach()

  # The umbrella header depends only on the list of schemas, known now.
  # file(CONFIGURE) rewrites it only when its content changes.
  file(CONFIGURE OUTPUT "${include_dir}/shmbus/messages.hpp" @ONLY CONTENT
"// shmbus — every message type of the bus, generated from schemas/*.fbs.
// Generated by cmake/ShmbusSchemas.cmake; do not edit.
#pragma once

@umbrella_includes@")

  set(embedded_src "${src_dir}/shmbus_embedded_schemas.cpp")
  list(LENGTH bfbs_files bfbs_count)
  add_custom_command(
    OUTPUT "${embedded_src}"
    COMMAND "${CMAKE_COMMAND}" "-DOUTPUT=${embedded_src}"
            -P "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/EmbedBfbs.cmake" -- ${bfbs_files}
    DEPENDS ${bfbs_files} "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/EmbedBfbs.cmake"
    COMMENT "Embedding ${bfbs_count} binary schemas into shmbus_embedded_schemas.cpp"
    VERBATIM)

  add_custom_target(shmbus_generate
    DEPENDS ${headers} ${bfbs_files} "${embedded_src}"
    SOURCES ${schema_files})

  install(FILES ${schema_files} ${bfbs_files} DESTINATION "${CMAKE_INSTALL_DATADIR}/shmbus/schemas")

  set(SHMBUS_GENERATED_INCLUDE_DIR "${include_dir}" PARENT_SCOPE)
  set(SHMBUS_SCHEMA_SOURCES "${embedded_src}" PARENT_SCOPE)
  set(SHMBUS_SCHEMA_FILES "${schema_files}" PARENT_SCOPE)
  set(SHMBUS_BFBS_FILES "${bfbs_files}" PARENT_SCOPE)
endfunction()

shmbus_generate_schemas()

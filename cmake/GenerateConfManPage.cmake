# cmake -DMIDGE=path/to/midge -DIN=midge.conf.5.in -DOUT=midge.conf.5 -DVERSION=x.y.z -P this
# Puts the option list that `midge --help-config man` prints in place of @OPTIONS@.
execute_process(COMMAND ${MIDGE} --help-config man OUTPUT_VARIABLE options RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR options STREQUAL "")
  message(FATAL_ERROR "${MIDGE} --help-config man failed (${rc})")
endif()
file(READ ${IN} page)
string(REPLACE "@VERSION@" "${VERSION}" page "${page}")
string(REPLACE "@OPTIONS@\n" "${options}" page "${page}")
file(WRITE ${OUT} "${page}")

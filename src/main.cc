#include "server/server.h"

int main(int argc, char** argv) { return midge::server::run(argc, argv); }

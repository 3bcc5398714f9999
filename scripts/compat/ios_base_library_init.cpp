// GCC 13's libstdc++ (GLIBCXX_3.4.32) moved iostream initialisation into std::ios_base_library_init();
// libLibTorchSharp.so references it. Debian 12 ships GCC 12's libstdc++, where a static ios_base::Init does
// the same job. This tiny library provides the symbol so the patched TorchSharp native loads there.
#include <ios>
namespace std {
__attribute__((visibility("default"))) void ios_base_library_init() { static ios_base::Init init; }
}

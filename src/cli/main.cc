#include <cstdio>
int main() { std::puts("kvsync " KVSYNC_VERSION); return 0; }

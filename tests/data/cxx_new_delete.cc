#include <vector>
#include <new>
struct alignas(64) A { char c[100]; };
int main(){ int*p=new int(3); delete p; int*q=new int[10]; delete[] q; std::vector<int> v; for(int i=0;i<20;i++) v.push_back(i);
 A* a = new A; delete a; int* r = new (std::nothrow) int[5]; delete[] r; return 0;}

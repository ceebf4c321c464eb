/* Minimal bcryptprimitives.dll for Wine < 9 (Wine 8.0 in Debian 12 lacks it).
 * Copied unchanged (apart from this note) from the project's checked Windows recipe,
 * shared/windows/bcryptprimitives.c beside shared/windows/NOTES.md; scripts/windows.sh builds it
 * with MinGW-w64 and puts it in the Wine prefix's system32. Without it every Rust .exe exits at
 * once with code 53 under Wine 8.0.
 * Rust std (>= 1.78) on *-windows-gnu/msvc imports ProcessPrng from it. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE h, DWORD reason, LPVOID r) { (void)h; (void)reason; (void)r; return TRUE; }

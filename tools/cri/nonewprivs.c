/* A stand-in for Kubernetes' e2e-test-images/nonewprivs: installed setuid root in
 * its image and run as another user, it prints its effective uid: 0 when the
 * setuid bit took effect, the caller's uid when no_new_privs kept it from doing so.
 * Built static by tests/helpers/cri.py. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's libmpguard example, as a reader copies it: the first C block
under "## Using libmpguard", compiled with -Wall -Wextra -Werror against the
built libraries, then run on inputs one of which fails.

Usage: check-readme.py README LIBMPGUARD_SO LIBMPLOG_SO INCDIR... -- CC [CC ARGS...]
"""
import os
import re
import subprocess
import sys
import tempfile

MAIN = r"""
int main(void)
{
	int64_t xs[5] = {1, 2, -3, 4, 5}, ys[5] = {0};
	int r = add2_all(xs, ys, 5);
	if (r != 1) {
		fprintf(stderr, "add2_all: %d, not 1 failed input\n", r);
		return 1;
	}
	for (int i = 0; i < 5; i++)
		if (i != 2 && ys[i] != xs[i] + 2) {
			fprintf(stderr, "ys[%d] = %lld\n", i, (long long)ys[i]);
			return 1;
		}
	return 0;
}
"""


def main():
    sep = sys.argv.index("--")
    readme, mpguard_so, mplog_so, *incdirs = sys.argv[1:sep]
    cc = sys.argv[sep + 1:]
    text = open(readme, encoding="utf-8").read()
    section = text.split("\n## Using libmpguard\n", 1)
    if len(section) != 2:
        sys.exit("README: no '## Using libmpguard' section")
    m = re.search(r"^```c\n(.*?)^```$", section[1], re.S | re.M)
    if not m:
        sys.exit("README: no C example under '## Using libmpguard'")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "readme.c")
        exe = os.path.join(tmp, "readme")
        with open(src, "w", encoding="utf-8") as f:
            f.write(m.group(1) + MAIN)
        libdirs = sorted({os.path.dirname(os.path.abspath(p)) for p in (mpguard_so, mplog_so)})
        cmd = cc + ["-std=c17", "-Wall", "-Wextra", "-Werror", "-o", exe, src]
        cmd += ["-I" + d for d in incdirs]
        cmd += [mpguard_so, mplog_so] + ["-Wl,-rpath," + d for d in libdirs]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"README example does not compile:\n{r.stderr}")
        r = subprocess.run([exe], capture_output=True, text=True, timeout=120)
        if r.returncode:
            sys.exit(f"README example failed ({r.returncode}):\n{r.stderr}")
        # The failed input, named and explained by the example's loop.
        if not re.search(r"^input 2: .*negative input -3", r.stderr, re.M):
            sys.exit(f"README example did not report input 2's failure:\n{r.stderr}")
    print("README example: ok")


if __name__ == "__main__":
    main()

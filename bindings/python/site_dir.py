"""Print the folder under PREFIX where this interpreter looks for packages.

    site_dir.py PREFIX

Meson's Python module installs into lib/python3/dist-packages on Debian,
which Debian's /usr/bin/python3 searches under /usr but not under /usr/local
(the default prefix): there it looks in lib/python3.X/dist-packages. So the
package goes into the first *-packages folder of sys.path that lies under
PREFIX (not under a deeper prefix such as /usr/local for /usr). When there is
none, the standard lib/python3.X/site-packages is printed, with a second line
"not-on-path": the user then needs PYTHONPATH.
"""
import os
import sys
import sysconfig

prefix = os.path.abspath(sys.argv[1])
for entry in sys.path:
    if not entry or not entry.rstrip(os.sep).endswith(("dist-packages", "site-packages")):
        continue
    rel = os.path.relpath(os.path.abspath(entry), prefix)
    if rel.split(os.sep)[0] in ("lib", "lib64"):
        print(os.path.abspath(entry))
        break
else:
    print(sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix}))
    print("not-on-path")

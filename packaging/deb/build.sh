#!/bin/bash
# Builds the Debian package of termrooms (make deb): a virtualenv carrying the daemon and
# its libraries, as Synapse's packages carry theirs (dh-virtualenv), put together with
# dpkg's own tools. The virtualenv is made in a staging tree, then the paths written
# into it (script shebangs, activate scripts, the .pyc files' source paths) are set to
# where the package installs it, /opt/venvs/termrooms, as dh-virtualenv does.
#
# usage: build.sh WHEEL VERSION ARCH OUTPUT.deb   (PYTHON: the interpreter, Debian's)
set -euo pipefail

wheel=$1 version=$2 arch=$3 output=$4
python=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
venv=/opt/venvs/termrooms
work=$project/build/deb
root=$work/root
stage=$root$venv
export PYTHONDONTWRITEBYTECODE=1  # compiled once below, with the installed paths
umask 022

rm -rf "$root" "$work/shlibs"
mkdir -p "$root/DEBIAN" "$(dirname "$stage")"

# The virtualenv, on Debian's python3: the package depends on that interpreter.
"$python" -m venv "$stage"
# (pip's notes about the index directories this machine's pip.conf names are not ours)
"$stage/bin/python" -m pip install --quiet --no-compile "$wheel" \
    2> >(grep -v "^WARNING: Location 'file:.* is ignored" >&2)

# The paths of the staging tree become the installed ones.
for script in "$stage"/bin/*; do
    if [ -f "$script" ] && [ ! -L "$script" ]; then
        sed -i "1s|^#!$stage/|#!$venv/|" "$script"
    fi
done
sed -i "s|$stage|$venv|g" "$stage"/bin/activate* "$stage/pyvenv.cfg"

# Twisted's plugin cache, which the daemon cannot write under the unit's
# ProtectSystem=strict (docs/deploy.md), then every module compiled (again, for the ones
# venv's pip and setuptools came with) with the path it is installed at.
"$stage/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
"$stage/bin/python" -m compileall -q -f -j 0 -s "$stage" -p "$venv" "$stage/lib"
if leftovers=$(grep -rlF "$stage" "$stage"); then
    echo "build.sh: the staging path is still written in:" >&2
    echo "$leftovers" >&2
    exit 1
fi

# The unit from systemd/, running the packaged virtualenv; its manual-install notes are
# replaced by where the package put things.
mkdir -p "$root/lib/systemd/system"
{
    echo "# termrooms under systemd, installed by the termrooms Debian package: the daemon in"
    echo "# $venv, settings in /etc/termrooms/ (termrooms.toml, and env for secrets),"
    echo "# data in /var/lib/termrooms. docs/deploy.md, \"Install from the Debian package\"."
    echo "# Change it with \`systemctl edit termrooms\`, not here: an upgrade replaces this file."
    echo
    sed -n '/^\[Unit\]/,$p' "$project/systemd/termrooms.service" |
        sed "s|^ExecStart=/opt/termrooms/bin/|ExecStart=$venv/bin/|"
} >"$root/lib/systemd/system/termrooms.service"
grep -q "^ExecStart=$venv/bin/twistd " "$root/lib/systemd/system/termrooms.service" || {
    echo "build.sh: systemd/termrooms.service has no ExecStart=/opt/termrooms/bin/twistd" >&2
    exit 1
}

# The settings: the sample written by the packaged code itself, and the env file.
install -d -m 0750 "$root/etc/termrooms"
"$stage/bin/python" -c 'from termrooms.sample_config import sample_config_file; print(sample_config_file(), end="")' \
    >"$root/etc/termrooms/termrooms.toml"
install -m 0640 "$here/env" "$root/etc/termrooms/env"
chmod 0640 "$root/etc/termrooms/termrooms.toml"

mkdir -p "$root/usr/bin" "$root/usr/share/doc/termrooms"
ln -s "$venv/bin/termrooms" "$root/usr/bin/termrooms"
install -m 0644 "$project/README.md" "$root/usr/share/doc/termrooms/README.md"

# What the virtualenv's compiled code links against, outside the virtualenv, as Debian
# package names and versions (dpkg-shlibdeps wants a debian/control to look at).
mapfile -t elves < <(find "$stage" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c \
    'head -c 4 "$1" | grep -q "ELF" && echo "$1"' sh {} \;)
mapfile -t private < <(for elf in "${elves[@]}"; do dirname "$elf"; done | sort -u)
mkdir -p "$work/shlibs/debian"
printf 'Source: termrooms\n\nPackage: termrooms\nArchitecture: any\n' >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O --ignore-missing-info \
    "${private[@]/#/-l}" "${elves[@]}" 2>"$work/shlibs/warnings" | sed -n 's/^shlibs:Depends=//p')
minor=$("$python" -c 'import sys; print(sys.version_info[1])')
major=$("$python" -c 'import sys; print(sys.version_info[0])')
# The virtualenv holds lib/python3.N and cpython-3N extensions: that minor version only.
depends="python$major (>= $major.$minor), python$major (<< $major.$((minor + 1))), adduser, passwd${shlibs:+, $shlibs}"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" "$here/control.in" >"$root/DEBIAN/control"
install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"

# zstd: a second where gzip -9 takes 25, and smaller; the dpkg of Debian 12 reads it (the
# one of Debian 11 does not, but the Python 3.11 this needs is Debian 12's).
mkdir -p "$(dirname "$output")"
dpkg-deb --root-owner-group -Zzstd --build "$root" "$output" >/dev/null
echo "built $output"

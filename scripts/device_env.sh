# Sourced by the scripts/device_*.sh scripts: the GPU image lacks some of our dependencies, so the
# wheels in .whl/ (see the header of scripts/device_train.sh) go to /tmp/site; DEVICE=cpu (a local
# smoke test) uses this machine's installed packages. Exits 3 when the wheels do not install.
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD

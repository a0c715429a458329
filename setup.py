"""Packaging for digitslite. Versions are pinned so that `make test` is repeatable from nothing."""
from setuptools import find_packages, setup

setup(
    name="digitslite",
    version="0.1.0",
    description="Caffe-format semantic segmentation training (FCN) on PyTorch, with a web job server",
    python_requires=">=3.11",
    packages=find_packages(include=["digitslite", "digitslite.*"]),
    # Files the server and the commands read at run time, so that a wheel works as a checkout does.
    package_data={
        "digitslite": ["network_defs/**/*", "embedded_store/**/*"],
        "digitslite.caffe": ["caffe.proto"],
        "digitslite.server": ["templates/**/*", "static/**/*"],
    },
    install_requires=[
        # torch is installed first by the Makefile (the local CPU wheel); ==2.13.0 is then satisfied
        # and pip never resolves another build with its CUDA packages.
        "torch==2.13.0",
        "click==8.5.1",
        "flask==3.1.3",
        "lmdb==3.0.0",
        "matplotlib==3.11.2",
        "numpy==2.4.6",
        "pillow==13.0.0",
        "plotly==7.1.0",
        "protobuf==7.36.2",
        "h5py==3.16.0",
        "pydantic==2.13.5",
        "scikit-image==0.26.0",
    ],
    extras_require={
        "test": [
            "grpcio-tools==1.85.1",
            "hypothesis==6.155.2",
            # OpenCV's DNN module: a baseline of benchmarks/vs_caffe.py, run by the gpu_suite test
            "opencv-python-headless==4.13.0.92",
            "playwright==1.65.2",
            "pytest==9.0.3",
            "pytest-xdist==3.8.0",
            "pyyaml==6.0.3",
            "ruff==0.17.5",
            "sortedcontainers==2.4.0",
        ],
    },
    entry_points={"console_scripts": ["digitslite=digitslite.cli:main"]},
)

"""service.__all__ lists exactly the public names, sorted (as httpx's test_exported_members)."""

import service


def test_all_is_sorted_and_complete():
    public = sorted(n for n in dir(service) if not n.startswith("_") and n[0].isupper() or n == "create_app")
    assert service.__all__ == sorted(service.__all__)
    assert set(service.__all__) == set(public)


def test_service_never_imports_paddle():
    import subprocess
    import sys

    code = "import sys, service, service.app, service.server, textsr.cli; textsr.cli.build_parser(); print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

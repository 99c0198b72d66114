"""Sphinx configuration of the course website (built by `bash .ci/site`, see .ci/sphinx/build.py).

The sources are the processed, executed notebooks that build.py writes next to a copy of this file; nothing here
executes notebooks (myst-nb runs with execution off) and nothing loads from a CDN: plotly.js and MathJax are
copied into `_static/` by build.py.
"""
import configparser
from pathlib import Path

_cfg = configparser.ConfigParser()
_cfg.read(Path(__file__).resolve().parent / 'settings.ini')
_s = _cfg['DEFAULT']

project = _s['title']
author = _s['author']
copyright = _s['copyright']
release = version = _s['version']

extensions = ['myst_nb', 'sphinx.ext.mathjax']
source_suffix = {'.ipynb': 'myst-nb', '.md': 'myst-nb'}
exclude_patterns = ['_build', '**.ipynb_checkpoints', 'settings.ini', 'conf.py']
root_doc = 'index'

# Notebooks arrive executed and processed with nbdev's processors: render their stored outputs, never execute.
nb_execution_mode = 'off'
nb_output_stderr = 'show'
nb_merge_streams = True
nb_render_markdown_format = 'myst'       # markdown outputs (show_doc, notes) are MyST, like the cells
nb_ipywidgets_js = {}                    # the widget manager comes from a CDN: widgets are replaced by a note instead
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist', 'html_image', 'substitution', 'attrs_inline']
myst_dmath_double_inline = True
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure', 'myst.xref_missing']

# Math: MathJax 2.7 from the PyPI package jupyter-server-mathjax, copied to _static/mathjax by build.py.
mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full'
mathjax2_config = {
    'tex2jax': {'inlineMath': [['\\(', '\\)']], 'displayMath': [['\\[', '\\]']], 'processEscapes': True,
                'processEnvironments': True,
                # myst puts `tex2jax_ignore` on the page (so that a stray $ is never math): process its math nodes
                'processClass': 'math|output_area', 'ignoreClass': 'tex2jax_ignore|mathjax_ignore'},
    # the package ships only the STIX-Web fonts (as the Jupyter Notebook configures it)
    # MathJax_Blank (its probe for web fonts) points at about:blank, which Chromium reports as a failed font load
    'HTML-CSS': {'availableFonts': [], 'preferredFont': None, 'webFont': 'STIX-Web', 'imageFont': None,
                 'styles': {'@font-face': {'font-family': 'MathJax_Blank', 'src': "local('MathJax_Blank')"}}},
    'SVG': {'font': 'STIX-Web'},
    # no fast preview and no hidden assistive MathML: their styles ask for the TeX web fonts, which the package
    # does not ship (the STIX-Web fonts draw the math)
    'fast-preview': {'disabled': True}, 'AssistiveMML': {'disabled': True},
    'menuSettings': {'CHTMLpreview': False, 'assistiveMML': False},
    'showMathMenu': False,
    'messageStyle': 'none',
}

html_theme = 'sphinx_book_theme'
html_title = 'd2o_edu: alignment from negative samples'
html_static_path = ['_static']
html_favicon = '_static/favicon.svg'
html_css_files = ['d2o.css']
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    'repository_url': _s['git_url'],
    'repository_branch': _s.get('branch', 'main'),
    'path_to_docs': _s.get('nbs_path', 'nbs'),
    'use_repository_button': True,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
# pydata-sphinx-theme: no version check / fonts from the web
html_context = {'default_mode': 'light'}

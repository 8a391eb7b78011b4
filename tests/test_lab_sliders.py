"""The sliders of notebook 04 in a real JupyterLab, in headless Chromium: run all its cells, move the quadratic's `a`
slider with the keyboard, and see its readout change and its figure redrawn.

The lab serves a temporary folder holding copies of nbs/04_sgd_quadratic.ipynb and settings.ini (tests/lab_helpers.py
starts it, as tests/test_lab_browser.py does for the handwriting notebook); notebook 04 reads no MNIST data. Without
chromium and chromedriver the test skips, saying why. Screenshots before and after the move are kept in the test's
temporary folder, whose path the test prints."""
import shutil
from pathlib import Path

import pytest

from lab_helpers import lab_server, chromium, open_notebook, run_all, find, move_slider, screenshot, wait_until, into_view

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = '04_sgd_quadratic.ipynb'

def figure_src(interact):
    "The `src` of the figure an interact widget shows (a data: URL of its PNG), or None while it is being redrawn."
    from selenium.common.exceptions import StaleElementReferenceException
    try:
        imgs = interact.find_elements('css selector', '.widget-output img')
        return imgs[0].get_attribute('src') if imgs else None
    except StaleElementReferenceException: return None

def widget_error(interact):
    "The text of an error the interact's function raised, shown in its output in place of the figure; '' if none."
    return ' '.join(e.text.splitlines()[-1] for e in interact.find_elements(
        'css selector', '.widget-output [data-mime-type="application/vnd.jupyter.stderr"]') if e.text)

def redrawn(interact, before):
    "The figure's new `src` once it differs from `before`; fail at once if the function raised instead."
    if error := widget_error(interact): pytest.fail(f"plot_quadratic failed in the interact's output: {error}")
    src = figure_src(interact)
    return src if src and src != before else None

def test_the_quadratic_sliders_redraw_the_figure(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('lab_sliders')
    root = tmp/'notebooks'
    (root/'nbs').mkdir(parents=True)
    shutil.copy(ROOT/'nbs'/NOTEBOOK, root/'nbs')
    shutil.copy(ROOT/'settings.ini', root)   # a cell of 04 reads its own file, from nbdev's nbs_path
    env = {'OMP_NUM_THREADS': '1'}   # as under nbdev_test
    with chromium(tmp) as driver, lab_server(root, tmp, env) as lab:
        open_notebook(driver, lab, f'nbs/{NOTEBOOK}')
        run_all(driver, timeout=120)
        # The first interact of the notebook is plot_quadratic's: sliders a, b, c, then its figure.
        interact = into_view(driver, find(driver, '.jp-OutputArea-output .widget-interact'))
        labels = [e.text for e in interact.find_elements('css selector', '.widget-slider .widget-label')]
        assert labels == ['a', 'b', 'c'], labels
        a = interact.find_elements('css selector', '.widget-slider')[0]
        readout = lambda: a.find_element('css selector', '.widget-readout').text
        assert readout() == '0.30'
        before = wait_until(lambda: redrawn(interact, None), "plot_quadratic's figure")
        screenshot(driver, tmp/'quadratic_before.png')
        move_slider(driver, a, 3)   # three steps of 0.01
        wait_until(lambda: readout() == '0.33', 'the readout of a to say 0.33', 30)
        after = wait_until(lambda: redrawn(interact, before), 'the figure to be redrawn', 30)
        screenshot(driver, tmp/'quadratic_after.png')
        assert after.startswith('data:image/png'), after[:40]
        assert len(interact.find_elements('css selector', '.widget-output img')) == 1   # redrawn, not added below
        # Every slider of the notebook still draws after Run All (the exercises at the end redefine rmse and apply_step)
        errors = [widget_error(w) for w in driver.find_elements('css selector', '.widget-interact')]
        assert len(errors) == 2 and not any(errors), errors

"""The console against a real chat node (packaged model) over plain DDS on loopback.

Both run as processes, as `kidscare-llm node` and `kidscare-llm console`; a ROS 2-wire peer
speaks for the child. Over HTTP: an alert arrives, quiet hours set on the page make the robot
refuse kindly, and deleting the child empties the database. In headless Chromium (Debian's
chromium + chromium-driver, skipped when missing): log in, an alert appears live, acknowledge
it, read the transcript (a script tag shown as text), set quiet hours, export, delete; upload
a document, watch its progress bar finish, ask the robot about it and see the answer cite it.
"""

import datetime as dt
import json
import os
from pathlib import Path
import re
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN, free_port, wait_for_port
from ros2_wire import Peer

pytestmark = pytest.mark.slow
PASSWORD = 'sofa-and-phone-42'
XSS = '<script>alert(1)</script>'
RISKY = '우리 집 주소는 서울시 강남구 테헤란로 123이야'
FAST = ['-p', 'llm.temperature=0', '-p', 'llm.max_tokens=16', '-p', 'model.download=false',
        '-p', 'memory.warm_start=false']
DINO = '# 공룡 이야기\n브라키오사우루스는 쥐라기 후기에 살았던 목이 아주 긴 공룡이에요.\n'


@pytest.fixture(scope='module')
def robot(tmp_path_factory):
    """A chat node and a console on one data dir; yields (peer, base URL, data dir)."""
    root = tmp_path_factory.mktemp('console')
    data = root / 'data'
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data), PYTHONUNBUFFERED='1')
    subprocess.run([str(BIN / 'kidscare-llm'), 'console', '--set-password'], env=env,
                   input=PASSWORD + '\n', text=True, check=True, capture_output=True)
    port = free_port()
    procs = []
    for name, cmd in (('node', ['node', '--transport', 'dds', *FAST]),
                      ('console', ['console', '--transport', 'dds', '-p',
                                   f'console.port={port}'])):
        with (root / f'{name}.log').open('wb') as out:
            procs.append(subprocess.Popen([str(BIN / 'kidscare-llm'), *cmd], env=env,
                                          stdout=out, stderr=subprocess.STDOUT))
    peer = Peer(int(os.environ['ROS_DOMAIN_ID']))
    try:
        wait_for_port(port, procs[1], timeout=60)
        assert peer.wait_matched(writes=['/user_utterance', '/chat_node/session'],
                                 reads=['/robot_reply'], timeout=120), \
            (root / 'node.log').read_text()[-2000:]
        yield peer, f'http://127.0.0.1:{port}', data, root
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


def say(peer, user, text, timeout=90.0):
    """Speak as a child; return the robot's whole reply."""
    peer.publish('/chat_node/session', user)
    time.sleep(0.3)
    peer.take('/robot_reply')
    peer.publish('/user_utterance', text)
    reply, _ = peer.collect_until('/robot_reply', (), timeout)
    return reply


def quiet_now() -> str:
    """Return quiet hours around this very minute."""
    now = dt.datetime.now()
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    return f'{start:%H:%M}-{end:%H:%M}'


def rows_of(data, user):
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        return db.execute('SELECT COUNT(*) FROM messages m JOIN sessions s ON s.id = '
                          'm.session_id WHERE s.user = ?', (user,)).fetchone()[0]


def test_alert_quiet_hours_and_delete_over_dds(robot):
    import httpx

    peer, base, data, root = robot
    with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as web:
        token = re.search(r'name="csrf" content="([^"]+)"', web.get('/login').text).group(1)
        assert '/logout' in web.post('/login', data={'csrf': token, 'password': PASSWORD}).text
        token = re.search(r'name="csrf" content="([^"]+)"', web.get('/').text).group(1)
        assert say(peer, 'mina', RISKY)
        page = web.get('/').text
        assert '테헤란로' in page and '/children/mina' in page
        done = web.post('/rules', data={'csrf': token, 'user': 'mina', 'quiet': quiet_now()})
        assert done.status_code == 200, done.text
        assert say(peer, 'mina', '같이 놀자') == '이제 잘 시간이야. 내일 또 이야기하자!'
        assert say(peer, 'lion', 'Hello!') != '이제 잘 시간이야. 내일 또 이야기하자!'
        assert '같이 놀자' in web.get('/children/mina').text
        assert rows_of(data, 'mina') == 4
        done = web.post('/data/delete', data={'csrf': token, 'user': 'mina', 'confirm': 'mina'})
        assert done.status_code == 200, done.text
    assert rows_of(data, 'mina') == 0 and rows_of(data, 'lion') == 2
    assert 'mina' not in (data / 'alerts.jsonl').read_text(encoding='utf-8')
    assert 'mina' not in json.loads((data / 'caregiver' / 'rules.json').read_text())


def chromium():
    """Return (browser, driver) paths of Debian's chromium and chromium-driver, or skip."""
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver') or '/usr/bin/chromedriver'
    if not browser or not Path(driver).is_file():
        pytest.skip('chromium and chromium-driver are not installed (scripts/setup.sh installs '
                    'them on Debian)')
    pytest.importorskip('selenium')
    return browser, driver


def open_browser(download_dir: Path, width=1280, height=900):
    """Start headless Chromium through chromium-driver (no browser or driver download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                f'--window-size={width},{height}', '--lang=ko'):
        options.add_argument(arg)
    options.add_experimental_option('prefs', {'download.default_directory': str(download_dir),
                                              'download.prompt_for_download': False})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_a_parent_in_a_real_browser(robot, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    peer, base, data, root = robot
    say(peer, 'ria', XSS)
    page = open_browser(tmp_path)
    wait = WebDriverWait(page, 60)
    try:
        page.get(base + '/')
        assert page.current_url.endswith('/login')
        page.find_element(By.NAME, 'password').send_keys(PASSWORD)
        page.find_element(By.CSS_SELECTOR, 'form[action="/login"] button').click()
        wait.until(seen.presence_of_element_located((By.ID, 'alerts')))
        before = len(page.find_elements(By.CSS_SELECTOR, 'article.alert'))
        say(peer, 'ria', RISKY)  # arrives live: no reload
        wait.until(lambda p: len(p.find_elements(By.CSS_SELECTOR, 'article.alert')) > before)
        assert page.find_element(By.ID, 'banner').is_displayed()
        newest = page.find_element(By.CSS_SELECTOR, 'article.alert.open')
        assert '테헤란로' in newest.text and 'ria' in newest.text
        newest.find_element(By.NAME, 'note').send_keys('아이와 이야기함')
        newest.find_element(By.TAG_NAME, 'button').click()
        wait.until(lambda p: '아이와 이야기함' in p.page_source)
        page.get(base + '/children/ria')
        texts = [e.text for e in page.find_elements(By.CSS_SELECTOR, '.msg.user .text')]
        assert XSS in texts  # shown as text, never run
        assert page.execute_script('return document.querySelectorAll("main script").length') == 0
        page.get(base + '/rules')
        page.find_element(By.CSS_SELECTOR, 'select[name=user] option[value=ria]').click()
        page.find_element(By.NAME, 'quiet').send_keys(quiet_now())
        page.find_element(By.CSS_SELECTOR, '#ruleform button').click()
        wait.until(lambda p: quiet_now() in p.page_source)
        assert say(peer, 'ria', '안녕?') == '이제 잘 시간이야. 내일 또 이야기하자!'
        page.get(base + '/data')
        page.find_element(By.CSS_SELECTOR, '#exportform option[value=ria]').click()
        page.find_element(By.CSS_SELECTOR, '#exportform button').click()
        target = tmp_path / 'kidscare-ria.json'
        WebDriverWait(page, 30).until(lambda p: target.is_file())
        exported = json.loads(target.read_text(encoding='utf-8'))
        assert exported['user'] == 'ria' and exported['alerts'][0]['category']
        assert exported['acknowledgements'][0]['note'] == '아이와 이야기함'
        page.find_element(By.CSS_SELECTOR, '#deleteform option[value=ria]').click()
        page.find_element(By.CSS_SELECTOR, '#deleteform input[name=confirm]').send_keys('ria')
        page.find_element(By.CSS_SELECTOR, '#deleteform button').click()
        wait.until(lambda p: p.find_elements(By.CSS_SELECTOR, 'p.note[role=status]'))
        assert '삭제했어요' in page.find_element(By.CSS_SELECTOR, 'p.note[role=status]').text
    finally:
        page.quit()
    assert rows_of(data, 'ria') == 0


def test_a_parent_uploads_a_document_and_the_robot_cites_it(robot, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    peer, base, data, root = robot
    document = tmp_path / '공룡 이야기.md'
    document.write_text(DINO, encoding='utf-8')
    page = open_browser(tmp_path)
    wait = WebDriverWait(page, 120)
    try:
        page.get(base + '/login')
        page.find_element(By.NAME, 'password').send_keys(PASSWORD)
        page.find_element(By.CSS_SELECTOR, 'form[action="/login"] button').click()
        wait.until(seen.presence_of_element_located((By.ID, 'alerts')))
        page.get(base + '/knowledge')
        page.find_element(By.CSS_SELECTOR, '#uploadform input[type=file]').send_keys(
            str(document))
        page.find_element(By.CSS_SELECTOR, '#uploadform button').click()
        wait.until(seen.presence_of_element_located((By.ID, 'jobbar')))
        wait.until(lambda p: p.find_element(By.ID, 'job').get_attribute('data-state') == 'done')
        bar = page.find_element(By.ID, 'jobbar')
        assert bar.get_attribute('value') == bar.get_attribute('max') == '1'
        assert '끝났어요' in page.find_element(By.ID, 'jobstate').text
        assert not page.find_elements(By.CSS_SELECTOR, '#jobfailed li')
        row = page.find_element(By.CSS_SELECTOR, '#documents tr[data-source="공룡_이야기.md"]')
        assert int(row.find_elements(By.TAG_NAME, 'td')[1].text) >= 1
        assert (data / 'console' / 'uploads' / '공룡_이야기.md').is_file()
        assert say(peer, 'dino', '브라키오사우루스는 언제 살았어?')
        page.get(base + '/children/dino')
        sources = page.find_elements(By.CSS_SELECTOR, '.msg.assistant details')
        assert sources and '공룡_이야기.md' in sources[-1].get_attribute('textContent')
    finally:
        page.quit()

"""ament_python package kidscare_llm (colcon build, or pip install -e . into a venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'kidscare_llm'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/config/persona', glob('config/persona/*.*')),
        (f'share/{PACKAGE}/config/safety', glob('config/safety/*.yaml')),
        (f'share/{PACKAGE}/config/memory', glob('config/memory/*.yaml')),
        (f'share/{PACKAGE}/data/safety/train', glob('data/safety/train/*.jsonl')),
        (f'share/{PACKAGE}/data/safety/cues', glob('data/safety/cues/*.jsonl')),
    ],
    package_data={'kidscare_llm.console': ['templates/*.html', 'static/*']},
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='kidscare_llm developers',
    maintainer_email='kidscare-llm@example.com',
    description='On-device, Korean-first, multi-turn RAG chatbot for service robots (ROS 2).',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'kidscare-llm = kidscare_llm.cli:main',
            'chat_node = kidscare_llm.nodes.chat_node:main',
            'stt_node = kidscare_llm.nodes.stt_node:main',
            'tts_node = kidscare_llm.nodes.tts_node:main',
            'console_node = kidscare_llm.nodes.console_node:main',
        ],
    },
)

"""The console's words in Korean (default) and English; templates call t('key')."""

TEXTS = {
    'title': ('토리 보호자 콘솔', 'Tori caregiver console'),
    'alerts': ('알림', 'Alerts'), 'children': ('아이들', 'Children'),
    'rules': ('규칙', 'Rules'), 'data': ('데이터', 'Data'),
    'knowledge': ('지식', 'Knowledge'), 'persona': ('페르소나', 'Persona'),
    'logout': ('로그아웃', 'Log out'), 'login': ('로그인', 'Log in'),
    'password': ('비밀번호', 'Password'),
    'bad_password': ('비밀번호가 맞지 않아요.', 'Wrong password.'),
    'too_many': ('로그인 시도가 너무 많아요. 5분 뒤에 다시 해 주세요.',
                 'Too many attempts. Try again in 5 minutes.'),
    'no_password': ('비밀번호가 없어서 이 로봇에서만 열 수 있어요. 휴대폰에서 보려면 '
                    '`kidscare-llm console --set-password`로 비밀번호를 정하세요.',
                    'No password is set, so only this robot can open this page. To open it '
                    'from a phone, set one with `kidscare-llm console --set-password`.'),
    'banner': ('확인하지 않은 알림', 'Unacknowledged alerts'),
    'no_alerts': ('알림이 없어요.', 'No alerts.'),
    'child': ('아이', 'Child'), 'time': ('시간', 'Time'), 'category': ('종류', 'Category'),
    'said': ('아이의 말', 'What the child said'), 'answer': ('로봇의 대답', "Robot's answer"),
    'ack': ('확인', 'Acknowledge'), 'note': ('메모', 'Note'),
    'acked_by': ('확인함', 'Acknowledged'),
    'no_children': ('아직 대화한 아이가 없어요.', 'No child has talked with the robot yet.'),
    'sessions': ('대화', 'Sessions'), 'today': ('오늘', 'Today'),
    'last_talk': ('마지막 대화', 'Last talk'), 'minutes': ('분', 'min'),
    'chart': ('최근 14일 대화 시간 (분)', 'Talk time, last 14 days (minutes)'),
    'transcript': ('대화 내용', 'Transcript'), 'robot': ('토리', 'Tori'),
    'sources': ('출처', 'Sources'), 'safety': ('안전', 'Safety'),
    'rule_line': ('규칙', 'Rule'), 'interrupted': ('끊김', 'cut off'),
    'all_children': ('모든 아이', 'All children'),
    'quiet_hours': ('조용한 시간 (예: 21:00-07:00)', 'Quiet hours (e.g. 21:00-07:00)'),
    'daily_limit': ('하루 대화 시간 (분, 0: 제한 없음)', 'Daily talk limit (minutes, 0: none)'),
    'inherit': ('비워 두면 위 규칙을 따라요', 'Leave empty to follow the rule above'),
    'save': ('저장', 'Save'), 'saved': ('저장했어요.', 'Saved.'),
    'default_rule': ('기본값 (매개변수)', 'Default (parameters)'),
    'node_down': ('챗 노드가 응답하지 않아요', 'The chat node did not answer'),
    'retention': ('보관 기간', 'Retention'),
    'retention_now': ('지금 오래된 대화 지우기', 'Delete old conversations now'),
    'days': ('일', 'days'),
    'export': ('내보내기 (JSON)', 'Export (JSON)'),
    'delete_child': ('아이의 모든 데이터 삭제', "Delete all of a child's data"),
    'confirm_hint': ('확인을 위해 아이 이름(ID)을 한 번 더 입력하세요',
                     "Type the child's id again to confirm"),
    'confirm_mismatch': ('확인 이름이 달라서 지우지 않았어요.',
                         'The confirmation did not match: nothing was deleted.'),
    'deleted': ('삭제했어요', 'Deleted'),
    'audit': ('활동 기록', 'Audit log'), 'who': ('누가', 'Who'), 'what': ('무엇을', 'What'),
    'memory': ('기억', 'Memory'), 'forget': ('잊기', 'Forget'),
    'memory_off': ('기억 기능이 꺼져 있거나 챗 노드가 응답하지 않아요.',
                   'Memory is off, or the chat node did not answer.'),
    'lang_switch': ('English', '한국어'),
}


def text(key: str, lang: str) -> str:
    """Return a text in 'ko' or 'en' (the key itself when unknown)."""
    pair = TEXTS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == 'en' else pair[0]

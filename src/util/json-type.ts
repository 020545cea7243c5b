/** The Content-Type of every JSON answer keygate writes itself (Suffit's spelling: clients may compare it whole). */
export const JSON_CONTENT_TYPE = 'application/json;charset=UTF-8'
